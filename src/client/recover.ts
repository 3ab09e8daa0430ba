// `burrow system recover` (issue 19 item 8): the way back from a state
// database the daemon cannot use. The damaged file is set aside, never
// deleted (the user may want what is in it); the sandboxes' and helpers'
// rows that can still be read go into a fresh database
// (src/state/salvage.ts); the daemon then starts on it and, at start,
// stops every sandbox it has no record of and
// kills the helpers of this state that no row records
// (src/daemon/recovery.ts stopUnrecorded, src/state/helpers.ts
// sweepUnrecorded). CLI side, host namespaces.
import { closeSync, existsSync, readFileSync, renameSync } from "node:fs";
import { ROLES } from "../roles.ts";
import { BurrowError } from "../errors.ts";
import { checkStateDb } from "../state/check.ts";
import { stateDbFile } from "../state/db.ts";
import { type Salvaged, salvageState } from "../state/salvage.ts";
import { acquireStateLock, stateLockOwner } from "../state/lock.ts";
import { call, paths } from "./client.ts";

export interface RecoverReport {
  /** What the check found. */
  health: string;
  /** Where the damaged database now is, when it was set aside. */
  setAside: string | null;
  /** The daemon that stopped so the file could be set aside. */
  stoppedDaemon: number | null;
  /** What could still be read from the damaged file and was kept. */
  salvaged: Salvaged | null;
  /** Sandboxes stopped because nothing recorded them (short ids). */
  stopped: string[];
}

/** Whether `pid` is a burrow daemon: the lock file's pid is only a hint, never signalled unchecked. */
function isDaemon(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1] === ROLES.daemon;
  } catch {
    return false;
  }
}

/** How long a daemon asked to stop gets before recover gives up. */
const STOP_WAIT_MS = 15_000;

export async function recoverState(now = new Date()): Promise<RecoverReport> {
  const p = paths();
  const health = checkStateDb(p.stateDir);
  let setAside: string | null = null;
  let stoppedDaemon: number | null = null;
  let salvaged: Salvaged | null = null;
  if (!health.ok) {
    if (health.newer)
      throw new BurrowError(`${health.detail}; run that burrow, or upgrade this one: recover sets aside only a damaged database`, { kind: "setup" });
    // A daemon that opened the file before it was damaged still holds it:
    // it stops (SIGTERM is a clean stop: its sandboxes keep running, and
    // no supervisor restarts it), or the file could change under us.
    const owner = stateLockOwner(p.stateDir);
    if (owner && owner !== process.pid && isDaemon(owner)) {
      try {
        process.kill(owner, "SIGTERM");
        stoppedDaemon = owner;
      } catch {}
    }
    const lock = await acquireStateLock(p.stateDir, STOP_WAIT_MS);
    if (!("fd" in lock))
      throw new BurrowError(
        `a burrow daemon${lock.heldBy ? ` (pid ${lock.heldBy})` : ""} still holds ${p.stateDir} after ${STOP_WAIT_MS / 1000} s: stop it (kill ${lock.heldBy ?? "PID"}) and run burrow system recover again`,
        { kind: "daemon" },
      );
    try {
      // Under the lock no daemon opens the file. The WAL and its index go
      // with it, under the same stem, so sqlite3 opens the set as it was.
      const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
      const aside = `${p.stateDir}/state-damaged-${stamp}.db`;
      const file = stateDbFile(p.stateDir);
      for (const suffix of ["-wal", "-shm", ""]) if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix);
      setAside = aside;
      // Rows that can still be read come back; the rest is stopped by the daemon's start.
      salvaged = salvageState(aside, p.stateDir);
    } finally {
      closeSync(lock.fd);
    }
  }
  // The daemon starts (or already runs) on a sound database; any request
  // but ping waits until its start-up reconcile, which stops the
  // unrecorded sandboxes, is done.
  const events = await call("events", { since: 0 });
  // Only this recover's: an earlier daemon start may have stopped others (and said so in its log).
  const since = now.toISOString();
  const stopped = events.filter((e) => e.type === "died" && e.attributes.reason === "no record" && e.time >= since).map((e) => e.name ?? e.id ?? "?");
  return { health: health.detail, setAside, stoppedDaemon, salvaged, stopped };
}
