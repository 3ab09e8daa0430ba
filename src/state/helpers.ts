// The helper-process ledger (issue 10 item 2): every process burrow leaves
// running beside a sandbox (slirp4netns, pasta, the rootless CNI
// namespace's slirp4netns, dnsname's dnsmasq) is written down BEFORE it is
// spawned, and its pid and start time the moment it is. dnsmasq is started
// by the dnsname plugin, not by burrow: its intent is written before the
// ADD that may start it, the marker rides in the plugins' environment
// (dnsname passes its own on to dnsmasq), and its pid comes from dnsname's
// pid file, checked (src/net/cni/dnsmasq.ts). A daemon killed at any point, or a
// write that fails (a full disk), can then never leave a helper nothing
// knows about:
//
//   intend()   row with no pid, and a marker for the helper's environment;
//              it fails (disk full) before anything is spawned
//   spawned()  pid + start time; if that write fails the caller kills the
//              helper it still holds and fails the create
//   sweep()    (daemon start and housekeeping) kills what no live owner
//              claims: by pid + start time, or for a row the daemon died
//              before completing, by the marker in /proc/PID/environ
//
// Daemon main thread, session namespaces (the helpers' own).
import type { Database } from "bun:sqlite";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { startTimeOf } from "../sys/processes.ts";

/** The environment variable that names a helper's ledger row. */
export const HELPER_MARKER = "BURROW_HELPER_ID";
/**
 * The environment variable that names the state directory whose ledger
 * wrote the row: a helper whose row is gone with its database (issue 19
 * item 8) is still known as this state's, and no other's (several daemons
 * of one uid, each with its own state, as in the tests).
 */
export const HELPER_SCOPE = "BURROW_HELPER_STATE";

export type HelperKind = "slirp4netns" | "pasta" | "dnsmasq" | "aardvark-dns" | "accel-keeper";

/** The owner of a helper started ahead of any sandbox (WarmCapability, src/net/backend.ts) until one adopts it. */
export function warmOwner(kind: HelperKind): string {
  return `warm:${kind}`;
}

export interface HelperRow {
  id: string;
  kind: HelperKind;
  /** "sandbox:<id>", "rootless-netns", "dnsname:<network>" (a network's dnsmasq), or "warm:<kind>" (WarmCapability, src/net/backend.ts). */
  owner: string;
  pid: number | null;
  pidStart: string | null;
  createdAt: string;
}

/** What a spawner gets for one helper: its environment marker and where to report the pid. */
export interface HelperTrack {
  env: Record<string, string>;
  /** Records the pid (and its start time); throws if that cannot be written. */
  spawned(pid: number): void;
  /** Nothing was spawned after all (dnsname found its dnsmasq running): forgets the intent. */
  cancel(): void;
  /** Hands the helper to another owner (a slirp4netns started ahead, adopted by a sandbox); throws if that cannot be written. */
  reassign(owner: string): void;
}

/** Whether an owner still claims its helpers (a sandbox that runs or is being made). */
export type OwnerLive = (row: HelperRow) => boolean;

export class HelperLedger {
  constructor(
    private readonly db: Database,
    /** The state directory (HELPER_SCOPE); absent in unit tests. */
    private readonly scope?: string,
  ) {}

  /** Records the intent to spawn a helper; throws (nothing spawned yet) when the write fails. */
  intend(kind: HelperKind, owner: string): HelperTrack {
    const id = randomBytes(12).toString("hex");
    this.db
      .query("INSERT INTO helpers (id, kind, owner, pid, pid_start, created_at) VALUES (?, ?, ?, NULL, NULL, ?)")
      .run(id, kind, owner, new Date().toISOString());
    return {
      env: { [HELPER_MARKER]: id, ...(this.scope ? { [HELPER_SCOPE]: this.scope } : {}) },
      // An upsert: a sweep may have dropped a row whose spawn took long.
      spawned: (pid) => {
        this.db
          .query(
            "INSERT INTO helpers (id, kind, owner, pid, pid_start, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, pid_start = excluded.pid_start",
          )
          .run(id, kind, owner, pid, startTimeOf(pid), new Date().toISOString());
      },
      cancel: () => this.drop(id),
      reassign: (next) => {
        owner = next;
        this.db.query("UPDATE helpers SET owner = ? WHERE id = ?").run(next, id);
      },
    };
  }

  /** Whether a row records this very process (pid and start time). */
  records(pid: number, pidStart: string): boolean {
    return !!this.db.query("SELECT 1 FROM helpers WHERE pid = ? AND pid_start = ?").get(pid, pidStart);
  }

  all(): HelperRow[] {
    const rows = this.db.query("SELECT * FROM helpers ORDER BY created_at").all() as Array<{
      id: string;
      kind: HelperKind;
      owner: string;
      pid: number | null;
      pid_start: string | null;
      created_at: string;
    }>;
    return rows.map((r) => ({ id: r.id, kind: r.kind, owner: r.owner, pid: r.pid, pidStart: r.pid_start, createdAt: r.created_at }));
  }

  /** Forgets the rows of helpers that are gone, whoever owned them. */
  private drop(id: string): void {
    this.db.query("DELETE FROM helpers WHERE id = ?").run(id);
  }

  /**
   * Kills every recorded helper whose owner is not live, and forgets the
   * rows of helpers that are gone. `graceMs`: rows without a pid younger
   * than this are left alone (a spawn under way). Returns what it killed,
   * for the log and for tests.
   */
  sweep(ownerLive: OwnerLive, graceMs = 5000): HelperRow[] {
    const killed: HelperRow[] = [];
    let byMarker: Map<string, number> | null = null;
    for (const row of this.all()) {
      try {
        if (row.pid !== null) {
          const running = row.pidStart !== null && startTimeOf(row.pid) === row.pidStart;
          if (!running) {
            this.drop(row.id);
            continue;
          }
          if (ownerLive(row)) continue;
          kill(row.pid);
          killed.push(row);
          this.drop(row.id);
          continue;
        }
        // Intent without a pid: the daemon died (or its write failed)
        // between spawn and record. Find the helper by its marker.
        if (ownerLive(row) && Date.now() - Date.parse(row.createdAt) < graceMs) continue;
        byMarker ??= markedProcesses();
        const pid = byMarker.get(row.id);
        const live = pid !== undefined && ownerLive({ ...row, pid });
        if (pid !== undefined && !live) {
          kill(pid);
          killed.push({ ...row, pid });
        }
        if (!live) this.drop(row.id);
        else this.db.query("UPDATE helpers SET pid = ?, pid_start = ? WHERE id = ?").run(pid, startTimeOf(pid), row.id);
      } catch (e) {
        // A full disk: the row stays, the next sweep tries again.
        log.debug(`helper ledger: ${row.kind} ${row.pid ?? "(no pid)"}: ${messageOf(e)}`);
      }
    }
    for (const k of killed) log.warn(`killed a ${k.kind} (pid ${k.pid}) that no sandbox owns any more (owner was ${k.owner})`);
    return killed;
  }
}

/**
 * Kills the helpers of this state that no row records: their rows went
 * with a database that was deleted or set aside as damaged (issue 19 item
 * 8). Only at daemon start, before anything is spawned: a spawn under way
 * has its row first, but this daemon has none under way yet. A helper is
 * this state's when its HELPER_SCOPE is, or, for one an older burrow
 * started without that variable, when `unscopedOurs(pid)` says so
 * (rootless: it lives in this daemon's user namespace, which only this
 * state's daemons use).
 */
export function sweepUnrecorded(ledger: HelperLedger, scope: string, unscopedOurs: (pid: number) => boolean): Array<{ pid: number; id: string }> {
  const rows = ledger.all();
  const recorded = new Set(rows.map((r) => r.id));
  // A dnsmasq an earlier ADD started is recorded under a row of its own (recordDnsmasq), not its marker's.
  const recordedPids = new Set(rows.flatMap((r) => (r.pid !== null && r.pidStart !== null && startTimeOf(r.pid) === r.pidStart ? [r.pid] : [])));
  const killed: Array<{ pid: number; id: string }> = [];
  for (const h of markedHelpers()) {
    if (recorded.has(h.id) || recordedPids.has(h.pid)) continue;
    if (h.scope !== null ? h.scope !== scope : !unscopedOurs(h.pid)) continue;
    kill(h.pid);
    killed.push({ pid: h.pid, id: h.id });
  }
  for (const k of killed) log.warn(`killed helper pid ${k.pid}: no record of it (its row ${k.id} went with the state database)`);
  return killed;
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {}
}

/** pid of every process of ours whose environment carries a helper marker, by marker. */
export function markedProcesses(): Map<string, number> {
  return new Map(markedHelpers().map((h) => [h.id, h.pid]));
}

/** The value of `name` in a NUL-separated environment, or null. */
function envValue(env: string, name: string): string | null {
  const needle = `${name}=`;
  let at = 0;
  if (!env.startsWith(needle)) {
    const i = env.indexOf(`\0${needle}`);
    if (i < 0) return null;
    at = i + 1;
  }
  const end = env.indexOf("\0", at);
  return env.slice(at + needle.length, end < 0 ? undefined : end);
}

/** Every live process of ours whose environment carries a helper marker: its pid, marker and scope. */
function markedHelpers(): Array<{ pid: number; id: string; scope: string | null }> {
  const out: Array<{ pid: number; id: string; scope: string | null }> = [];
  for (const entry of readdirSync("/proc")) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${entry}/environ`, "latin1");
    } catch {
      continue; // not ours, or gone
    }
    const id = envValue(env, HELPER_MARKER);
    if (id === null) continue;
    // pasta forks: the parent exits at once, the child keeps the marker.
    if (startTimeOf(Number(entry)) !== null) out.push({ pid: Number(entry), id, scope: envValue(env, HELPER_SCOPE) });
  }
  return out;
}
