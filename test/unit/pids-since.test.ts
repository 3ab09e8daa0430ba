// pidsSince and pidCounter (src/sys/processes.ts): the pids a sandbox's
// release looks at instead of all of /proc, and when it may not.
import { expect, test } from "bun:test";
import { type PidCounter, madeNothingSince, pidCounter, pidsSince } from "../../src/sys/processes.ts";
import { readdirSync } from "node:fs";

const at = (lastPid: number, forks: number, o: Partial<PidCounter> = {}): PidCounter => ({
  lastPid,
  forks,
  forksAfter: forks,
  threads: 200,
  pidMax: 32768,
  ...o,
});
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("the pids handed out since the mark, on from its last pid", () => {
  expect(pidsSince(at(100, 1000), at(105, 1005), 2048)).toEqual([101, 102, 103, 104, 105]);
  // Pids skipped because they were in use make the range longer than the count: all of it is looked at.
  expect(pidsSince(at(100, 1000), at(140, 1005), 2048)).toEqual(range(101, 140));
  expect(pidsSince(at(100, 1000), at(100, 1000), 2048)).toEqual([]);
});

test("past pid_max the count wraps: the end of the range, then its start", () => {
  expect(pidsSince(at(32760, 1000), at(4, 1012), 2048)).toEqual([...range(32761, 32767), 1, 2, 3, 4]);
});

test("none when the counter may have come round to the mark (the pids could be older ones), or there are too many", () => {
  // 2 * handed out + in use before must stay below pid_max - 300.
  // (32768 - 300 = 32468: 2 * 16133 + 200 is below it, 2 * 16134 + 200 is not.)
  expect(pidsSince(at(100, 0), at(200, 16_133), 1 << 20)).not.toBeNull();
  expect(pidsSince(at(100, 0), at(200, 16_134), 1 << 20)).toBeNull();
  expect(pidsSince(at(100, 0, { threads: 32_300 }), at(200, 100), 2048)).toBeNull();
  // A smaller pid_max now (root lowered it) counts.
  expect(pidsSince(at(100, 0), at(200, 100, { pidMax: 400 }), 2048)).toBeNull();
  // A count that went back is no count.
  expect(pidsSince(at(100, 1000), at(105, 999), 2048)).toBeNull();
  // More than the cap: the caller walks /proc instead.
  expect(pidsSince(at(100, 0), at(3000, 2900), 2048)).toBeNull();
  expect(pidsSince(at(100, 0), at(2148, 2048), 2048)).toHaveLength(2048);
});

test("now's count is the one read after the last pid, the mark's the one before", () => {
  // A pid handed out between the reads of now: counted by forksAfter only.
  expect(pidsSince(at(100, 0), at(200, 16_133, { forksAfter: 16_134 }), 1 << 20)).toBeNull();
  expect(pidsSince(at(100, 0, { forksAfter: 50 }), at(200, 16_133), 1 << 20)).not.toBeNull();
});

test("pidCounter reads this machine's: a last pid below pid_max, counts that only grow", () => {
  const a = pidCounter();
  expect(a).not.toBeNull();
  expect(a!.lastPid).toBeGreaterThan(0);
  expect(a!.lastPid).toBeLessThan(a!.pidMax);
  expect(a!.forksAfter).toBeGreaterThanOrEqual(a!.forks);
  expect(a!.threads).toBeGreaterThan(0);
  Bun.spawnSync(["true"]);
  const b = pidCounter()!;
  expect(b.forks).toBeGreaterThan(a!.forksAfter);
  // The child's pid is among those handed out since.
  expect(pidsSince(a!, b, 1 << 20)?.length).toBeGreaterThan(0);
});

test("madeNothingSince: only this process's own threads after the pid, at most 8 of them, no counter gone back", () => {
  const tids = readdirSync("/proc/self/task").map(Number);
  const own = Math.max(...tids);
  const notOurs = (n: number) => !tids.includes(n);
  // Nothing after it, or only a thread of ours.
  expect(madeNothingSince(own, own)).toBe(true);
  expect(madeNothingSince(own - 1, own)).toBe(true);
  // A pid after it that is not a thread of ours: something else was made.
  let other = own + 1;
  while (!notOurs(other)) other++;
  expect(madeNothingSince(other - 1, other)).toBe(false);
  // More than eight after it, or a counter below the pid (wrapped): no.
  expect(madeNothingSince(own - 9, own)).toBe(false);
  expect(madeNothingSince(own + 1, own)).toBe(false);
  // The machine's own counter: a child that ran and was waited for is after any pid taken before it.
  const before = pidCounter()!.lastPid;
  Bun.spawnSync(["true"]);
  expect(madeNothingSince(before)).toBe(false);
});
