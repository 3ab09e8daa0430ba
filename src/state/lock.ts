// The state database carries the lock (issue 10 item 1): a daemon holds
// flock(LOCK_EX) on STATE_DIR/state.lock, beside state.db, for its whole
// life, so two daemons for one state can never both be active, whatever
// runtime directory each was given. The kernel drops the lock with the
// process (kill -9 included); the fd is close-on-exec (Bun opens so), so no
// helper the daemon spawns inherits it. The file holds the daemon's pid,
// for messages only.
import { nodeFs } from "../lazy-node.ts";
import { isSysError } from "../sys/libc.ts";
import { LOCK, flock } from "../sys/proc.ts";

export function stateLockFile(stateDir: string): string {
  return `${stateDir}/state.lock`;
}

/**
 * Takes the state database's lock for this daemon, retrying for `waitMs`
 * (a daemon that is shutting down, or a CLI's brief shared probe, holds it
 * for a moment). Returns the fd to keep open, or the pid written by the
 * daemon that holds it.
 */
export async function acquireStateLock(stateDir: string, waitMs = 2000): Promise<{ fd: number } | { heldBy: number | null }> {
  const { openSync, ftruncateSync, writeSync, closeSync, constants } = nodeFs();
  const fd = openSync(stateLockFile(stateDir), constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      flock(fd, LOCK.EX | LOCK.NB);
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
      return { fd };
    } catch (e) {
      if (Date.now() > deadline) {
        closeSync(fd);
        return { heldBy: lockHolderPid(stateDir) };
      }
      if (!isSysError(e, "EAGAIN")) {
        closeSync(fd);
        throw e;
      }
      await Bun.sleep(50);
    }
  }
}

function lockHolderPid(stateDir: string): number | null {
  try {
    const n = Number.parseInt(nodeFs().readFileSync(stateLockFile(stateDir), "utf8"), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * For the CLI: the pid of the daemon that holds the state's lock, 0 when it
 * is held but names no pid, null when no daemon holds it. A shared,
 * non-blocking probe: it never waits, and a daemon starting meanwhile
 * retries (acquireStateLock).
 */
export function stateLockOwner(stateDir: string): number | null {
  const { openSync, closeSync, constants } = nodeFs();
  let fd: number;
  try {
    fd = openSync(stateLockFile(stateDir), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    flock(fd, LOCK.SH | LOCK.NB);
    flock(fd, LOCK.UN);
    return null;
  } catch {
    return lockHolderPid(stateDir) ?? 0;
  } finally {
    closeSync(fd);
  }
}
