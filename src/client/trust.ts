// Trust nothing on the path to the daemon (issue 10 item 3). Before the CLI
// sends a request (a create carries the user's whole environment) it checks,
// like ssh's StrictModes, that the runtime directory and the control socket
// belong to the user and that nobody else can write to them, and that the
// process listening on the socket runs as the user (SO_PEERCRED). Each
// refusal is one line saying what is wrong and how to fix it. The daemon
// runs the same directory checks on its runtime and state directories.
//
// Ownership is compared with the effective uid of the calling process in its
// own user namespace: the CLI's host uid, and for a rootless daemon uid 0 of
// the holder's user namespace, which is the same user.
import { nodeFs } from "../lazy-node.ts";
import { checkOwnedPrivate, refuse } from "../private-file.ts";
import { lstatPath } from "../sys/files.ts";
import { geteuid, type PeerCred, peerCredOfFd } from "../sys/peercred.ts";
import { connectUnix } from "../sys/unix-stream.ts";
import { SysError } from "../sys/libc.ts";

// The daemon makes and opens its private files with the same checks (src/private-file.ts).
export { UntrustedPath, ensurePrivateDir, isPrivateDir, openPrivateAppend } from "../private-file.ts";

/** Checks a file burrow opens by name in one of its directories, if it exists. */
export function checkPrivateFile(path: string, kind: "socket" | "file", uid = geteuid()): boolean {
  const st = lstatPath(path);
  if (!st) return false;
  checkOwnedPrivate(path, st, uid, kind);
  return true;
}

/**
 * Opens a sandbox's log (named by the daemon) for reading: null when there
 * is none yet; refused when it is a symbolic link, not a regular file, or
 * not the user's alone. O_NOFOLLOW, then fstat of what was opened, so a
 * swap between the check and the open cannot redirect the read.
 */
export function openPrivateLog(path: string, uid = geteuid()): number | null {
  const { openSync, fstatSync, closeSync, constants } = nodeFs();
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code === "ELOOP") refuse(path, "it is a symbolic link", `remove it (rm ${path})`);
    throw e;
  }
  try {
    checkOwnedPrivate(path, fstatSync(fd), uid, "file");
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

export type SocketCheck = "ours" | "absent";

/**
 * Checks the control socket file and the process listening on it. "absent"
 * when nothing answers there (no file, or a stale file nobody listens on):
 * the caller may start a daemon. Throws when someone else is listening.
 */
export function checkControlSocket(path: string, uid = geteuid()): SocketCheck {
  if (!checkPrivateFile(path, "socket", uid)) return "absent";
  const fd = connectControlSocket(path, uid);
  if (fd === null) return "absent";
  closeQuietly(fd);
  return "ours";
}

/**
 * A connection to the control socket whose listener runs as the user
 * (SO_PEERCRED on this connection, so what was checked is what the request
 * goes to), the socket file checked by the caller. null when nothing
 * listens there; throws (UntrustedPath) when someone else does.
 */
export function connectControlSocket(path: string, uid = geteuid()): number | null {
  let fd: number;
  try {
    fd = connectUnix(path);
  } catch (e) {
    if (e instanceof SysError && (e.code === "ECONNREFUSED" || e.code === "ENOENT")) return null;
    throw e;
  }
  let peer: PeerCred;
  try {
    peer = peerCredOfFd(fd);
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
  if (peer.uid !== uid) {
    closeQuietly(fd);
    refuse(path, `the process listening on it (pid ${peer.pid}) runs as uid ${peer.uid}, not as you (uid ${uid})`, "stop that process and remove the socket");
  }
  return fd;
}

/** Closes an fd, ignoring errors (for cleanup paths). */
export function closeQuietly(fd: number): void {
  try {
    nodeFs().closeSync(fd);
  } catch {}
}
