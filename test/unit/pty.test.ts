// src/sys/pty.ts against the real kernel: a pty pair, its window size, and
// raw mode on the slave side (no mocks: openpty and the ioctls are cheap).
import { afterEach, expect, test } from "bun:test";
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { isatty } from "node:tty";
import { readFile } from "node:fs/promises";
import { getWinSize, makeRaw, openPty, readPty, restoreTerminal, setWinSize, writePty } from "../../src/sys/pty.ts";

const open: number[] = [];
afterEach(() => {
  for (const fd of open.splice(0)) closeSync(fd);
});

function pair(size?: { rows: number; cols: number }) {
  const p = openPty(size);
  open.push(p.master, p.slave);
  return p;
}

/** Writes `input` on the slave and reads what the master gets back. */
function roundTrip(p: { master: number; slave: number }, input: string): string {
  writeSync(p.slave, input);
  const buf = Buffer.alloc(256);
  const n = readSync(p.master, buf, 0, buf.length, null);
  return buf.subarray(0, n).toString("latin1");
}

test("openPty gives a terminal pair of the asked size", () => {
  const p = pair({ rows: 33, cols: 101 });
  expect(isatty(p.slave)).toBe(true);
  expect(getWinSize(p.slave)).toEqual({ rows: 33, cols: 101 });
  expect(getWinSize(p.master)).toEqual({ rows: 33, cols: 101 });
});

test("setWinSize on the master is what the slave side reads", () => {
  const p = pair();
  setWinSize(p.master, { rows: 52, cols: 123 });
  expect(getWinSize(p.slave)).toEqual({ rows: 52, cols: 123 });
});

test("getWinSize of something that is not a terminal is null", () => {
  const fd = openSync("/dev/null", "r");
  open.push(fd);
  expect(getWinSize(fd)).toBeNull();
});

test("makeRaw turns off output processing (\\n stays \\n) and restoreTerminal brings it back", () => {
  const p = pair();
  expect(roundTrip(p, "a\n")).toBe("a\r\n");
  const saved = makeRaw(p.slave);
  expect(roundTrip(p, "b\n")).toBe("b\n");
  restoreTerminal(p.slave, saved);
  expect(roundTrip(p, "c\n")).toBe("c\r\n");
});

test("readPty delivers what the slave side writes and ends when the last slave fd closes", async () => {
  const p = openPty();
  open.push(p.master);
  let got = "";
  const r = readPty(p.master, (c) => (got += Buffer.from(c).toString()));
  writeSync(p.slave, "one\n");
  closeSync(p.slave);
  await r.done;
  expect(got).toBe("one\r\n");
});

test("idle ptys being read leave the thread pool free (a daemon with many -d -t sandboxes)", async () => {
  const readers = Array.from({ length: 16 }, () => {
    const p = pair();
    return readPty(p.master, () => {});
  });
  // With blocking reads this never finished: every pool thread sat in read(2).
  const r = await Promise.race([readFile("/proc/self/stat", "utf8").then(() => "read"), Bun.sleep(5000).then(() => "stuck")]);
  expect(r).toBe("read");
  for (const x of readers) x.stop();
});

test("writePty gets more than a pty buffer across once the other side reads", async () => {
  const p = pair();
  makeRaw(p.slave);
  const big = Buffer.alloc(256 * 1024, "x");
  const sent = writePty(p.master, big);
  let got = 0;
  // The slave side read on the event loop too (a blocking read here would
  // stall the writer's retries).
  const r = readPty(p.slave, (c) => (got += c.length));
  const end = Date.now() + 10000;
  while (got < big.length && Date.now() < end) await Bun.sleep(5);
  r.stop();
  await sent;
  expect(got).toBe(big.length);
});
