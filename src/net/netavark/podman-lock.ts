// podman's network lock, taken where podman takes it, so that a burrow
// daemon and a podman command never change the same network state at once.
// podman (containers/common libnetwork) holds a whole-file fcntl write lock
// through every network create and remove and every container's setup and
// teardown (its address choice and netavark's run in one): on
// NETWORKS_DIR/netavark.lock (podman 4, and podman 5 rootless), or on
// /run/lock/netavark.lock (podman 5 rootful: one host netns, one lock).
// burrow takes the locks that apply, in one order (podman holds one at a
// time, so there is no cycle), as OFD locks (src/sys/proc.ts), and waits
// off the event loop. docs/netavark.md "podman's lock".
import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { BurrowError } from "../../errors.ts";
import { log } from "../../log.ts";
import { PODMAN_NETAVARK_RUN_DIR } from "../../paths.ts";
import { recordLockHolder, tryRecordLock } from "../../sys/proc.ts";

/** podman 5's rootful lock: only where burrow shares podman's run dir. */
export const PODMAN_ROOT_LOCK = "/run/lock/netavark.lock";

/**
 * The lock files for a daemon whose network files are in `networksDir` and
 * netavark state in `netavarkDir`. Rootful with podman's own run dir,
 * podman 5's host-wide lock first; then the networks dir's (podman 4, and
 * podman 5 rootless). Pure.
 */
export function podmanLockPaths(o: { rootless: boolean; networksDir: string; netavarkDir: string }): string[] {
  const own = `${o.networksDir}/netavark.lock`;
  return !o.rootless && o.netavarkDir === PODMAN_NETAVARK_RUN_DIR ? [PODMAN_ROOT_LOCK, own] : [own];
}

/** How long a lock is waited for: podman holds it for one network operation (tens to hundreds of ms). */
const WAIT_MS = 30_000;
const POLL_MS = 5;
const SAY_AFTER_MS = 1_000;

/**
 * Opens a lock file as podman does (read-write, made when missing, 0644),
 * never through a symlink; read-only when it may not be written (root's
 * file in a rootless user's dir: a shared lock then, which still excludes
 * podman's write lock); null when its directory does not exist (no podman
 * has used that place: nothing to exclude). Refuses anything but a regular
 * file, and with `rootOwned` (a rootful daemon: /run/lock is anyone's to
 * write in) a file root does not own: another user's lock could be held
 * forever. Rootless the files are in the user's own networks dir.
 */
function openLock(path: string, rootOwned: boolean): { fd: number; writable: boolean } | null {
  let fd: number;
  let writable = true;
  try {
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EACCES") throw e;
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      writable = false;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new BurrowError(`cannot open podman's network lock ${path}: ${(e as Error).message}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile() || (rootOwned && st.uid !== 0)) {
    closeSync(fd);
    throw new BurrowError(`podman's network lock ${path} is not a regular file${rootOwned ? " owned by root" : ""}: not used`);
  }
  return { fd, writable };
}

/**
 * Runs `fn` holding podman's network locks at `paths` (podmanLockPaths;
 * `rootOwned` for a rootful daemon, see openLock). Waits for a holder up
 * to 30 s, polling without blocking the daemon's event loop, says so in
 * the log after 1 s, then gives up in one line naming the file and the
 * holder. The locks go with their fds, also when `fn` throws.
 */
export async function withPodmanLock<T>(paths: readonly string[], fn: () => Promise<T>, opts: { rootOwned: boolean; waitMs?: number }): Promise<T> {
  const waitMs = opts.waitMs ?? WAIT_MS;
  const held: number[] = [];
  try {
    for (const path of paths) {
      const opened = openLock(path, opts.rootOwned);
      if (opened === null) continue;
      const { fd, writable } = opened;
      held.push(fd);
      let said = false;
      // Who holds it: asked only when it is said (a holder's pid, or an OFD lock's -1).
      const who = () => {
        const holder = recordLockHolder(fd);
        return holder === null ? "" : holder > 0 ? ` by process ${holder}` : " by another program";
      };
      for (const t0 = performance.now(); !tryRecordLock(fd, writable); ) {
        const waited = performance.now() - t0;
        if (waited >= waitMs) throw new BurrowError(`podman's network lock ${path} is held${who()} for more than ${waitMs / 1000} s`, { kind: "in-use" });
        if (!said && waited >= SAY_AFTER_MS) {
          log.info(`waiting for podman's network lock ${path}, held${who()}`);
          said = true;
        }
        await Bun.sleep(POLL_MS);
      }
    }
    return await fn();
  } finally {
    for (const fd of held.reverse()) closeSync(fd);
  }
}
