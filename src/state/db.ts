// The daemon's state: bun:sqlite in WAL mode with numbered migrations
// (PRAGMA user_version). Only the daemon opens it.
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { ensurePrivateDir } from "../private-file.ts";

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

/** The schema version this burrow writes (PRAGMA user_version after the migrations). */
export const SCHEMA_VERSION = MIGRATIONS.length;

export function stateDbFile(dir: string): string {
  return `${dir}/state.db`;
}

export function openState(dir: string): Database {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const db = new Database(stateDbFile(dir), { create: true, strict: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA busy_timeout = 5000");
  // A checkpointed WAL is cut back to this size instead of staying at its peak.
  db.run("PRAGMA journal_size_limit = 1048576");
  // Checkpoint at 256 pages (1 MiB) instead of 1000 (4 MiB): the WAL of a
  // busy daemon stays near the limit above (a create writes ~10 frames).
  db.run("PRAGMA wal_autocheckpoint = 256");
  const current = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  // A newer burrow's schema is not ours to migrate or misread.
  if (current > SCHEMA_VERSION) throw new Error(`its schema version is ${current}, newer than this burrow's ${SCHEMA_VERSION}`);
  for (let i = current; i < MIGRATIONS.length; i++) {
    db.transaction(() => {
      db.run(MIGRATIONS[i]!);
      db.run(`PRAGMA user_version = ${i + 1}`);
    })();
  }
  return db;
}

/**
 * When state.db (or `dir` itself) is gone while `db` (opened from it) is
 * still good: writes the database back in its place from the open handle and
 * returns true; the caller must stop using `db` (it is closed) and start
 * again on the file. Synchronous from start to end, so no request of the
 * daemon runs in between. Returns false when the file is there.
 */
export function restoreDeletedState(db: Database, dir: string): boolean {
  if (statSync(stateDbFile(dir), { throwIfNoEntry: false })) return false;
  // Its whole directory removed (an rm -rf of ~/.local/share/burrow): made again, private, as a start makes it.
  if (!existsSync(dir)) ensurePrivateDir(dir);
  const tmp = `${stateDbFile(dir)}.restoring`;
  rmSync(tmp, { force: true });
  // Everything into the (unlinked) main file first, then a full copy of it.
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  db.query("VACUUM INTO ?").run(tmp);
  // Closing removes the -wal and -shm the name still carries (the old
  // file's, now empty): a WAL must never meet another database file.
  db.close();
  try {
    renameSync(tmp, stateDbFile(dir));
  } catch {
    // The handle is closed either way: the restart finds no file and
    // stops the sandboxes it has no record of (src/daemon/recovery.ts).
  }
  return true;
}
