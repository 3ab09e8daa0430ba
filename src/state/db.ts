// The daemon's state: bun:sqlite in WAL mode with numbered migrations
// (PRAGMA user_version). Only the daemon opens it.
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";

const MIGRATIONS: string[] = [
  `CREATE TABLE sandboxes (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     created_at TEXT NOT NULL,
     status TEXT NOT NULL,           -- created | running | exited
     pid INTEGER,
     pid_start TEXT,
     exit_code INTEGER,
     started_at TEXT,
     finished_at TEXT,
     boot_id TEXT NOT NULL,
     session TEXT NOT NULL,          -- holder identity the pins live under
     spec TEXT NOT NULL,             -- JSON: what the user asked for
     runtime TEXT NOT NULL           -- JSON: what setup made (pins, ns inodes, network)
   );
   CREATE TABLE events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     time TEXT NOT NULL,
     type TEXT NOT NULL,
     sandbox_id TEXT,
     name TEXT,
     attrs TEXT
   );
   CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // Issue 10 item 2: helper processes recorded before they are spawned
  // (src/state/helpers.ts), and the request id of every create, so a
  // retried create gets the first attempt's answer (src/daemon/requests-seen.ts).
  `CREATE TABLE helpers (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,             -- slirp4netns | pasta
     owner TEXT NOT NULL,            -- sandbox:<id> | rootless-netns
     pid INTEGER,                    -- NULL until spawned
     pid_start TEXT,
     created_at TEXT NOT NULL
   );
   CREATE TABLE create_requests (
     request_id TEXT PRIMARY KEY,
     sandbox_id TEXT NOT NULL,
     name TEXT NOT NULL,
     created_at TEXT NOT NULL
   );`,
];

export function openState(dir: string): Database {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const db = new Database(`${dir}/state.db`, { create: true, strict: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA busy_timeout = 5000");
  // A checkpointed WAL is cut back to this size instead of staying at its peak.
  db.run("PRAGMA journal_size_limit = 1048576");
  // Checkpoint at 256 pages (1 MiB) instead of 1000 (4 MiB): the WAL of a
  // busy daemon stays near the limit above (a create writes ~10 frames).
  db.run("PRAGMA wal_autocheckpoint = 256");
  const current = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  for (let i = current; i < MIGRATIONS.length; i++) {
    db.transaction(() => {
      db.run(MIGRATIONS[i]!);
      db.run(`PRAGMA user_version = ${i + 1}`);
    })();
  }
  return db;
}
