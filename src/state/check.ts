// Is the state database sound? For `burrow doctor` (no daemon started) and
// for the daemon itself before it trusts the file (issue 19 item 8). Opens
// read-only: a daemon may be using the file meanwhile, and WAL readers do
// not disturb it (SQLite may make the -shm index a reader needs, as any
// reader does; the database itself is never written).
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { messageOf } from "../errors.ts";
import { SCHEMA_VERSION, stateDbFile } from "./db.ts";

export type StateHealth =
  | { ok: true; detail: string }
  /** What is wrong, in words a user can act on; `newer`: sound, but a newer burrow's (upgrade, do not recover). */
  | { ok: false; detail: string; newer?: boolean };

/**
 * SQLite's quick_check (every page and index structure, without the
 * cross-checks of integrity_check), the schema version, and the tables
 * the daemon reads.
 */
export function checkStateDb(stateDir: string): StateHealth {
  const file = stateDbFile(stateDir);
  if (!existsSync(file)) return { ok: true, detail: `${file}: none yet (the daemon makes it)` };
  let db: Database | undefined;
  try {
    db = new Database(file, { readonly: true });
    return checkOpen(db, file);
  } catch (e) {
    return { ok: false, detail: `${file}: ${messageOf(e)}` };
  } finally {
    db?.close();
  }
}

/** The same checks on a database already open (the daemon's own handle). */
export function checkOpen(db: Database, file: string): StateHealth {
  const problems = (db.query("PRAGMA quick_check").all() as Array<{ quick_check: string }>).map((r) => r.quick_check).filter((r) => r !== "ok");
  if (problems.length)
    return { ok: false, detail: `${file} is damaged: ${problems.slice(0, 3).join("; ")}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ""}` };
  const version = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (version > SCHEMA_VERSION)
    return { ok: false, detail: `${file} has schema version ${version}, newer than this burrow's ${SCHEMA_VERSION}: a newer burrow made it`, newer: true };
  if (version === 0) return { ok: true, detail: `${file}: empty (the daemon sets it up)` };
  const tables = new Set((db.query("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name));
  const missing = ["sandboxes", "events", "helpers"].filter((t) => !tables.has(t));
  if (missing.length)
    return { ok: false, detail: `${file} has schema version ${version} but lacks the table${missing.length > 1 ? "s" : ""} ${missing.join(", ")}` };
  const rows = (db.query("SELECT count(*) AS n FROM sandboxes").get() as { n: number }).n;
  return { ok: true, detail: `${file}: schema ${version}, ${rows} sandbox${rows === 1 ? "" : "es"}, quick_check ok` };
}
