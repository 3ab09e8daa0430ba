// What `burrow system recover` can still read from a damaged state
// database (issue 19 item 8): damage often sits in one page (an event, an
// index), and the sandboxes' and helpers' rows are whole. Those rows go
// into the fresh database, so the daemon manages those sandboxes again
// (same boot and session: their ports are opened again); events and
// request ids are left behind. Both tables or neither: a sandbox whose
// helper rows were lost would have its slirp4netns or pasta killed as
// unrecorded. Every row is checked as any file from outside would be.
import { Database } from "bun:sqlite";
import * as v from "valibot";
import { chmodSync, rmSync } from "node:fs";
import { openState, stateDbFile } from "./db.ts";

const Json = v.pipe(
  v.string(),
  v.check((s) => {
    try {
      const x = JSON.parse(s);
      return typeof x === "object" && x !== null && !Array.isArray(x);
    } catch {
      return false;
    }
  }, "not a JSON object"),
);
const NullableString = v.nullable(v.string());
const NullableInt = v.nullable(v.pipe(v.number(), v.integer()));

const SandboxRow = v.object({
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  name: v.pipe(v.string(), v.regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/), v.maxLength(253)),
  created_at: v.string(),
  status: v.picklist(["created", "running", "exited"]),
  pid: NullableInt,
  pid_start: NullableString,
  exit_code: NullableInt,
  started_at: NullableString,
  finished_at: NullableString,
  boot_id: v.string(),
  session: v.string(),
  spec: Json,
  runtime: Json,
});

const HelperRow = v.object({
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{24}$/)),
  kind: v.picklist(["slirp4netns", "pasta", "dnsmasq"]),
  owner: v.string(),
  pid: NullableInt,
  pid_start: NullableString,
  created_at: v.string(),
});

export interface Salvaged {
  sandboxes: number;
  helpers: number;
  /** Why nothing was taken, when nothing was. */
  lost?: string;
}

/**
 * Reads the sandboxes and helpers of the damaged database `damaged` (with
 * its -wal beside it) and writes those that check out into a new database
 * in `stateDir`, which must have none (the caller set it aside, under the
 * state lock).
 */
export function salvageState(damaged: string, stateDir: string): Salvaged {
  let sandboxes: v.InferOutput<typeof SandboxRow>[];
  let helpers: v.InferOutput<typeof HelperRow>[];
  let old: Database | undefined;
  try {
    old = new Database(damaged, { readonly: true });
    sandboxes = (old.query("SELECT * FROM sandboxes").all() as unknown[]).flatMap((r) => {
      const p = v.safeParse(SandboxRow, r);
      return p.success ? [p.output] : [];
    });
    helpers = (old.query("SELECT * FROM helpers").all() as unknown[]).flatMap((r) => {
      const p = v.safeParse(HelperRow, r);
      return p.success ? [p.output] : [];
    });
  } catch (e) {
    return { sandboxes: 0, helpers: 0, lost: (e as Error).message };
  } finally {
    old?.close();
  }
  if (!sandboxes.length) return { sandboxes: 0, helpers: 0 };
  const db = openState(stateDir);
  // Made by the CLI (umask 022), read by the daemon only: as private as the daemon's own.
  chmodSync(stateDbFile(stateDir), 0o600);
  const names = new Set<string>();
  try {
    db.transaction(() => {
      for (const r of sandboxes) {
        if (names.has(r.name)) continue;
        names.add(r.name);
        db.query(
          `INSERT INTO sandboxes (id, name, created_at, status, pid, pid_start, exit_code, started_at, finished_at, boot_id, session, spec, runtime)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(r.id, r.name, r.created_at, r.status, r.pid, r.pid_start, r.exit_code, r.started_at, r.finished_at, r.boot_id, r.session, r.spec, r.runtime);
      }
      for (const h of helpers)
        db.query("INSERT INTO helpers (id, kind, owner, pid, pid_start, created_at) VALUES (?, ?, ?, ?, ?, ?)").run(
          h.id,
          h.kind,
          h.owner,
          h.pid,
          h.pid_start,
          h.created_at,
        );
    })();
    db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (e) {
    // No half-made database in its place: an empty sound one would tell the
    // next recover there is nothing to do, while the damaged copy still holds the rows.
    db.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${stateDbFile(stateDir)}${suffix}`, { force: true });
    throw e;
  }
  db.close();
  return { sandboxes: names.size, helpers: helpers.length };
}
