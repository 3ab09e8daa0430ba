// The helper ledger and the request ids (issue 10 item 2), against a real
// bun:sqlite database with burrow's migrations and real processes (sleep)
// standing in for helpers: nothing mocked but who owns what.
import { afterEach, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { openState } from "../../src/state/db.ts";
import { HELPER_MARKER, HelperLedger, markedProcesses } from "../../src/state/helpers.ts";
import { RequestsSeen } from "../../src/daemon/requests-seen.ts";
import { diskFullError, isDiskFull, SpaceReserve } from "../../src/state/full.ts";

const dirs: string[] = [];
const procs: Bun.Subprocess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function db(): Database {
  const dir = mkdtempSync(`${tmpdir()}/burrow-unit-`);
  dirs.push(dir);
  return openState(dir);
}

function helper(env: Record<string, string> = {}): Bun.Subprocess {
  const p = Bun.spawn(["sleep", "60"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  procs.push(p);
  // Until the child has exec'd, its /proc/PID/environ is still ours, without
  // the marker (a scan right after the spawn missed it, one run in many).
  for (let i = 0; i < 2000 && readFileSync(`/proc/${p.pid}/comm`, "utf8").trim() !== "sleep"; i++) Bun.sleepSync(1);
  return p;
}

const alive = (p: Bun.Subprocess) => p.exitCode === null && p.signalCode === null;

test("a recorded helper is kept while its owner lives and killed once it does not", async () => {
  const ledger = new HelperLedger(db());
  const track = ledger.intend("slirp4netns", "sandbox:a");
  const p = helper(track.env);
  track.spawned(p.pid);
  expect(ledger.all()).toMatchObject([{ kind: "slirp4netns", owner: "sandbox:a", pid: p.pid }]);
  expect(ledger.all()[0]!.pidStart).toMatch(/^\d+$/);

  expect(ledger.sweep(() => true)).toEqual([]);
  expect(alive(p)).toBe(true);

  const killed = ledger.sweep((row) => row.owner !== "sandbox:a");
  expect(killed.map((k) => k.pid)).toEqual([p.pid]);
  await p.exited;
  expect(p.signalCode).toBe("SIGKILL");
  expect(ledger.all()).toEqual([]);
});

test("a helper spawned but never given its pid (the daemon died in between) is found by its marker", async () => {
  const ledger = new HelperLedger(db());
  const track = ledger.intend("pasta", "sandbox:gone");
  const p = helper(track.env);
  expect(markedProcesses().get(track.env[HELPER_MARKER]!)).toBe(p.pid);
  // Younger than the grace period and its owner alive: a spawn under way, left alone.
  expect(ledger.sweep(() => true)).toEqual([]);
  expect(alive(p)).toBe(true);
  // Its owner gone: killed by the marker, the row forgotten.
  expect(ledger.sweep(() => false).map((k) => k.pid)).toEqual([p.pid]);
  await p.exited;
  expect(ledger.all()).toEqual([]);
});

test("an intent whose spawn never happened is forgotten; one whose owner lives gets its pid from the marker", () => {
  const ledger = new HelperLedger(db());
  ledger.intend("slirp4netns", "sandbox:x"); // spawn failed: nothing carries its marker
  expect(ledger.sweep(() => false)).toEqual([]);
  expect(ledger.all()).toEqual([]);

  const track = ledger.intend("slirp4netns", "rootless-netns");
  const p = helper(track.env);
  expect(ledger.sweep(() => true, 0)).toEqual([]);
  expect(ledger.all()).toMatchObject([{ owner: "rootless-netns", pid: p.pid }]);
});

test("rows of helpers that died are dropped, and a pid reused by another process is never killed", async () => {
  const d = db();
  const ledger = new HelperLedger(d);
  const track = ledger.intend("slirp4netns", "sandbox:a");
  const p = helper(track.env);
  track.spawned(p.pid);
  // Same pid, other start time: someone else's process now.
  d.query("UPDATE helpers SET pid_start = '1'").run();
  expect(ledger.sweep(() => false)).toEqual([]);
  expect(alive(p)).toBe(true);
  expect(ledger.all()).toEqual([]);
});

test("a failed write before the spawn throws, so nothing is spawned unrecorded", () => {
  const d = db();
  const ledger = new HelperLedger(d);
  d.run("DROP TABLE helpers"); // any write failure: SQLITE_FULL on a full disk
  expect(() => ledger.intend("slirp4netns", "sandbox:a")).toThrow();
});

test("request ids: a retry while the first attempt runs shares its answer; a finished one is replayed", async () => {
  const seen = new RequestsSeen(db());
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const create = async () => {
    runs++;
    seen.record("aa".repeat(8), "sandbox1", "web");
    await gate;
    return { id: "sandbox1", name: "web" };
  };
  const first = seen.once("aa".repeat(8), create, async () => null);
  const retry = seen.once("aa".repeat(8), create, async () => null);
  release();
  expect(await first).toEqual({ id: "sandbox1", name: "web" });
  expect(await retry).toEqual({ id: "sandbox1", name: "web" });
  expect(runs).toBe(1);

  // Later (another daemon): the record answers through replay.
  const replayed = await seen.once<object>("aa".repeat(8), create, async (s) => ({ id: s.sandboxId, name: s.name, replayed: true }));
  expect(replayed).toEqual({ id: "sandbox1", name: "web", replayed: true });
  expect(runs).toBe(1);

  // A first attempt rolled back: replay says null, the create runs afresh.
  seen.forget("sandbox1");
  expect(seen.lookup("aa".repeat(8))).toBeNull();
  seen.record("bb".repeat(8), "sandbox2", "db");
  const fresh = await seen.once(
    "bb".repeat(8),
    async () => ({ id: "sandbox3", name: "db" }),
    async () => null,
  );
  expect(fresh).toEqual({ id: "sandbox3", name: "db" });
  // Without an id (an older CLI) every call creates.
  await seen.once(undefined, create, async () => null);
  expect(runs).toBe(2);
});

test("a full disk is named with the directory and what to do; the reserve frees room once", () => {
  const full = Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
  expect(isDiskFull(full)).toBe(true);
  expect(isDiskFull(new Error("ENOSPC: no space left on device, write"))).toBe(true);
  expect(isDiskFull(new Error("constraint failed"))).toBe(false);
  const e = diskFullError(full, "/var/lib/burrow");
  expect(e?.message).toBe("the state directory /var/lib/burrow is full (database or disk is full): free some space there and try again");
  expect(e?.kind).toBe("disk-full");
  expect(diskFullError(new Error("other"), "/x")).toBeNull();

  const dir = mkdtempSync(`${tmpdir()}/burrow-unit-`);
  dirs.push(dir);
  const reserve = new SpaceReserve(`${dir}/reserve`, 4096);
  reserve.ensure();
  expect(Bun.file(`${dir}/reserve`).size).toBe(4096);
  expect(reserve.release()).toBe(true);
  expect(reserve.release()).toBe(false);
});
