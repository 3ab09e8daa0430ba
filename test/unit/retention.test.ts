// Events bounded by count and age, the WAL truncated (src/state/retention.ts),
// on a real bun:sqlite database in a temporary directory.
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { openState } from "../../src/state/db.ts";
import { SandboxStore } from "../../src/state/sandboxes.ts";
import { pruneEvents, retentionFromEnv } from "../../src/state/retention.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function fresh() {
  const dir = mkdtempSync(`${tmpdir()}/burrow-retention-`);
  dirs.push(dir);
  return { dir, db: openState(dir) };
}

test("the events table stays within its count: pruned every 100 events", () => {
  const { db } = fresh();
  const store = new SandboxStore(db, { maxEvents: 50, maxAgeMs: 3600_000 });
  for (let i = 0; i < 1000; i++) store.event("test", null, { i });
  const rows = store.eventsSince(0);
  // Pruned to 50 at event 1000 (a multiple of 100).
  expect(rows.length).toBe(50);
  expect(rows.at(-1)!.seq).toBe(1000);
  expect(rows[0]!.seq).toBe(951);
});

test("events older than the age go, whatever their number", () => {
  const { db } = fresh();
  const store = new SandboxStore(db, { maxEvents: 10_000, maxAgeMs: 60_000 });
  for (let i = 0; i < 10; i++) store.event("old", null);
  const later = Date.now() + 120_000;
  expect(pruneEvents(db, { maxEvents: 10_000, maxAgeMs: 60_000 }, later)).toBe(10);
  expect(store.eventsSince(0)).toEqual([]);
});

test("compact() leaves an empty WAL", () => {
  const { dir, db } = fresh();
  const store = new SandboxStore(db, { maxEvents: 10, maxAgeMs: 3600_000 });
  for (let i = 0; i < 99; i++) store.event("x", null, { pad: "y".repeat(500) });
  expect(statSync(`${dir}/state.db-wal`).size).toBeGreaterThan(0);
  store.compact();
  expect(statSync(`${dir}/state.db-wal`).size).toBe(0);
});

test("retention from the environment: defaults, and bad values fall back to them", () => {
  expect(retentionFromEnv({})).toEqual({ maxEvents: 10_000, maxAgeMs: 7 * 24 * 3600_000 });
  expect(retentionFromEnv({ BURROW_EVENTS_MAX: "20", BURROW_EVENTS_MAX_AGE: "60" })).toEqual({ maxEvents: 20, maxAgeMs: 60_000 });
  expect(retentionFromEnv({ BURROW_EVENTS_MAX: "-1", BURROW_EVENTS_MAX_AGE: "x" })).toEqual({ maxEvents: 10_000, maxAgeMs: 7 * 24 * 3600_000 });
});
