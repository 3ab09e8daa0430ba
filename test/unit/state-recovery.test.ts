// The pieces of issue 19 item 8 that need no daemon: the read-only check
// of state.db (src/state/check.ts), what can be read back from a damaged
// one (src/state/salvage.ts), a deleted file written back from an open
// handle (src/state/db.ts), and the sweep of helpers no row records
// (src/state/helpers.ts sweepUnrecorded), on real files and processes.
import { afterEach, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { checkStateDb } from "../../src/state/check.ts";
import { SCHEMA_VERSION, openState, restoreDeletedState, stateDbFile } from "../../src/state/db.ts";
import { salvageState } from "../../src/state/salvage.ts";
import { HELPER_MARKER, HELPER_SCOPE, HelperLedger, sweepUnrecorded } from "../../src/state/helpers.ts";
import { isRunning } from "../../src/sys/processes.ts";

const dirs: string[] = [];
const procs: Bun.Subprocess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill(9);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = mkdtempSync(`${tmpdir()}/burrow-recovery-`);
  dirs.push(d);
  return d;
}

const ID = "a".repeat(64);
function withSandbox(d: string): Database {
  const db = openState(d);
  db.query(
    `INSERT INTO sandboxes (id, name, created_at, status, pid, pid_start, exit_code, started_at, finished_at, boot_id, session, spec, runtime)
     VALUES (?, 'web', '2026-01-01T00:00:00Z', 'running', 1, '1', NULL, NULL, NULL, 'b', 's', '{"argv":["true"]}', '{"pins":null,"ino":null,"network":"none"}')`,
  ).run(ID);
  db.query("INSERT INTO helpers (id, kind, owner, pid, pid_start, created_at) VALUES (?, 'pasta', ?, 1, '1', 'x')").run("b".repeat(24), `sandbox:${ID}`);
  return db;
}

/** Overwrites page `page` (1-based) of the file with garbage. */
function damagePage(file: string, page: number, size = 4096): void {
  const fd = openSync(file, "r+");
  writeSync(fd, Buffer.alloc(size, 0x41), 0, size, (page - 1) * size);
  closeSync(fd);
}

test("check: none yet, sound, a damaged first page, a newer schema", () => {
  const d = dir();
  expect(checkStateDb(d)).toMatchObject({ ok: true, detail: expect.stringContaining("none yet") });
  const db = withSandbox(d);
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
  expect(checkStateDb(d)).toMatchObject({ ok: true, detail: expect.stringContaining(`schema ${SCHEMA_VERSION}, 1 sandbox, quick_check ok`) });
  const newer = openState(dir());
  newer.run(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
  newer.close();
  const newerDir = dirs.at(-1)!;
  expect(checkStateDb(newerDir)).toMatchObject({ ok: false, newer: true });
  expect(() => openState(newerDir)).toThrow(/newer than this burrow's/);
  damagePage(stateDbFile(d), 1);
  expect(checkStateDb(d)).toMatchObject({ ok: false, detail: expect.stringContaining("file is not a database") });
});

test("salvage: rows of a database damaged elsewhere come back; a damaged first page gives nothing", () => {
  const d = dir();
  const db = withSandbox(d);
  const eventsPage = (db.query("SELECT rootpage FROM sqlite_master WHERE name = 'events'").get() as { rootpage: number }).rootpage;
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
  damagePage(stateDbFile(d), eventsPage);
  expect(checkStateDb(d).ok).toBe(false);
  const to = dir();
  expect(salvageState(stateDbFile(d), to)).toEqual({ sandboxes: 1, helpers: 1 });
  expect(checkStateDb(to)).toMatchObject({ ok: true, detail: expect.stringContaining("1 sandbox") });
  damagePage(stateDbFile(d), 1);
  const none = salvageState(stateDbFile(d), dir());
  expect(none.sandboxes).toBe(0);
  expect(none.lost).toContain("file is not a database");
});

test("a deleted state.db is written back from the open handle, with every row", () => {
  const d = dir();
  const db = withSandbox(d);
  expect(restoreDeletedState(db, d)).toBe(false);
  for (const s of ["", "-wal", "-shm"]) rmSync(stateDbFile(d) + s, { force: true });
  expect(restoreDeletedState(db, d)).toBe(true);
  expect(existsSync(`${stateDbFile(d)}-wal`)).toBe(false);
  expect(checkStateDb(d)).toMatchObject({ ok: true, detail: expect.stringContaining("1 sandbox") });
});

test("sweepUnrecorded kills this state's helpers that no row records, and nobody else's", async () => {
  const d = dir();
  const ledger = new HelperLedger(openState(d), d);
  const spawn = async (env: Record<string, string>) => {
    const p = Bun.spawn(["sleep", "60"], { env: { ...process.env, ...env } });
    procs.push(p);
    // Until its execve, /proc/PID/environ is still this process's (no marker): the sweep must see the child's own.
    const end = Date.now() + 5000;
    while (!readFileSync(`/proc/${p.pid}/environ`, "utf8").includes(`${HELPER_MARKER}=${env[HELPER_MARKER]}`) && Date.now() < end) await Bun.sleep(5);
    return p.pid;
  };
  const recorded = ledger.intend("pasta", "sandbox:x");
  const kept = await spawn(recorded.env);
  recorded.spawned(kept);
  const orphan = await spawn({ [HELPER_MARKER]: "c".repeat(24), [HELPER_SCOPE]: d });
  const otherState = await spawn({ [HELPER_MARKER]: "d".repeat(24), [HELPER_SCOPE]: `${d}-other` });
  const unscoped = await spawn({ [HELPER_MARKER]: "e".repeat(24) });
  const killed = sweepUnrecorded(ledger, d, (pid) => pid === unscoped);
  expect(killed.map((k) => k.pid).sort()).toEqual([orphan, unscoped].sort());
  for (const pid of [orphan, unscoped]) {
    const end = Date.now() + 2000;
    while (isRunning(pid) && Date.now() < end) await Bun.sleep(10);
    expect(isRunning(pid)).toBe(false);
  }
  expect(isRunning(kept)).toBe(true);
  expect(isRunning(otherState)).toBe(true);
});
