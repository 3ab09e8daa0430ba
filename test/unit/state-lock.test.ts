// The state database's lock (src/state/lock.ts) with real flock(2) on a
// temporary directory: one holder at a time, and the CLI's probe never
// takes it away or waits.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { closeSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { acquireStateLock, stateLockOwner } from "../../src/state/lock.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(`${tmpdir()}/burrow-state-lock-`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("no lock file, or nobody holding it: no owner", async () => {
  expect(stateLockOwner(dir)).toBeNull();
  const got = await acquireStateLock(dir);
  expect("fd" in got).toBe(true);
  closeSync((got as { fd: number }).fd);
  expect(stateLockOwner(dir)).toBeNull();
});

test("held: the probe names the holder's pid, and a second daemon is refused after its wait", async () => {
  const first = await acquireStateLock(dir);
  expect("fd" in first).toBe(true);
  expect(stateLockOwner(dir)).toBe(process.pid);
  const second = await acquireStateLock(dir, 200);
  expect(second).toEqual({ heldBy: process.pid });
  // the probe did not take it from the holder
  expect(stateLockOwner(dir)).toBe(process.pid);
  closeSync((first as { fd: number }).fd);
  const third = await acquireStateLock(dir, 200);
  expect("fd" in third).toBe(true);
  closeSync((third as { fd: number }).fd);
});

test("released while a second daemon waits: it gets the lock", async () => {
  const first = (await acquireStateLock(dir)) as { fd: number };
  setTimeout(() => closeSync(first.fd), 100);
  const second = await acquireStateLock(dir, 2000);
  expect("fd" in second).toBe(true);
  closeSync((second as { fd: number }).fd);
});
