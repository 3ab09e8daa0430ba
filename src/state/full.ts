// A full state filesystem, said in one sentence (issue 10 item 2). SQLite
// reports it as SQLITE_FULL ("database or disk is full"), file writes as
// ENOSPC, and a helper whose pid could not be recorded as a BurrowError
// quoting either; the user needs to know which directory and what to do.
// What failed was rolled back by then (src/daemon/create-retry.ts finishes
// what a failed write left once there is room).
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { log } from "../log.ts";
import { BurrowError, messageOf } from "../errors.ts";

const FULL = /database or disk is full|ENOSPC|no space left on device|SQLITE_FULL/i;

export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "SQLITE_FULL" || code === "ENOSPC" || FULL.test(messageOf(e));
}

/** The error to report instead of `e` when it is a full disk, else null. */
export function diskFullError(e: unknown, stateDir: string): BurrowError | null {
  if (!isDiskFull(e)) return null;
  return new BurrowError(
    `the state directory ${stateDir} is full (${messageOf(e).replace(/^.*?(database or disk is full|no space left on device|ENOSPC).*$/is, "$1")}): free some space there and try again`,
    {
      kind: "disk-full",
      cause: e,
    },
  );
}

/**
 * Room kept for a rollback: a file of zeros in the state dir, deleted when a
 * write fails for lack of space so that the rollback's own writes (deleting
 * the half-made row) still fit, and made again once there is room. Without
 * it a rollback on a full disk could not delete its row, and `ps` would list
 * a sandbox that does not exist until space came back.
 */
export class SpaceReserve {
  private lastTry = 0;

  constructor(
    readonly path: string,
    readonly bytes = 256 * 1024,
  ) {}

  /** Makes the reserve when it is missing (at most every 10 s while that fails). */
  ensure(now = Date.now()): void {
    if (existsSync(this.path) || now - this.lastTry < 10_000) return;
    this.lastTry = now;
    try {
      writeFileSync(this.path, new Uint8Array(this.bytes), { mode: 0o600, flag: "wx" });
    } catch {
      rmSync(this.path, { force: true }); // a partial one would only take space
    }
  }

  /** Frees the reserve; true when there was one. */
  release(): boolean {
    if (!existsSync(this.path)) {
      log.warn(`out of space in ${dirname(this.path)}, and no reserve left to free for the rollback`);
      return false;
    }
    rmSync(this.path, { force: true });
    log.warn(`out of space in ${dirname(this.path)}: freed the ${this.bytes >> 10} KiB reserve for the rollback`);
    this.lastTry = Date.now();
    return true;
  }
}
