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
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, statSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { BurrowError } from "../errors.ts";
import { geteuid, peerCredOfSocket } from "../sys/peercred.ts";
import { SysError } from "../sys/libc.ts";

/** A path on the way to the daemon that is not the user's alone. */
export class UntrustedPath extends BurrowError {
  constructor(message: string) {
    super(message, { kind: "untrusted" });
  }
}

function refuse(path: string, what: string, fix: string): never {
  throw new UntrustedPath(`refusing to use ${path}: ${what}; ${fix}`);
}

const mode = (st: Stats) => `0${(st.mode & 0o7777).toString(8)}`;

function checkOwnedPrivate(path: string, st: Stats, uid: number, type: "directory" | "socket" | "file"): void {
  if (st.isSymbolicLink()) refuse(path, "it is a symbolic link", `remove it (rm ${path}) and run burrow again`);
  const isType = type === "directory" ? st.isDirectory() : type === "socket" ? st.isSocket() : st.isFile();
  if (!isType) refuse(path, `it is not a ${type}`, `remove it and run burrow again`);
  if (st.uid !== uid) refuse(path, `it is owned by uid ${st.uid}, not by you (uid ${uid})`, `remove it, or point XDG_RUNTIME_DIR at a directory of your own`);
  if (st.mode & 0o022) refuse(path, `it is writable by group or others (mode ${mode(st)})`, `fix it with: chmod go-w ${path}`);
}

/**
 * Makes `path` (mode 0700) unless it exists, then checks it: a real
 * directory, owned by the caller, writable by nobody else, in a parent that
 * others cannot swap it out of (writable by others only with the sticky bit).
 */
export function ensurePrivateDir(path: string, uid = geteuid()): void {
  const parent = dirname(path);
  let st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) {
    mkdirSync(parent, { recursive: true, mode: 0o700 });
    try {
      // Not recursive: the last component is made here, by us, or not at all.
      mkdirSync(path, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    st = lstatSync(path);
  }
  checkOwnedPrivate(path, st, uid, "directory");
  const pst = statSync(parent);
  if (pst.mode & 0o002 && !(pst.mode & 0o1000))
    refuse(
      path,
      `its parent ${parent} is writable by everyone without the sticky bit (mode ${mode(pst)})`,
      `fix it with: chmod o-w ${parent}, or point XDG_RUNTIME_DIR at a private directory`,
    );
}

/** Checks a file burrow opens by name in one of its directories, if it exists. */
export function checkPrivateFile(path: string, kind: "socket" | "file", uid = geteuid()): boolean {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return false;
  checkOwnedPrivate(path, st, uid, kind);
  return true;
}

/**
 * Opens a file in a checked directory for appending (created 0600), never
 * through a symbolic link: there a link can only be an attack or a mistake.
 */
export function openPrivateAppend(path: string, truncate = false): number {
  try {
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (truncate ? constants.O_TRUNC : constants.O_APPEND), 0o600);
    // One made by a looser umask (an older supervisor's `>>` after a logout) is made private again.
    const st = fstatSync(fd);
    if (st.isFile() && st.mode & 0o077 && st.uid === geteuid()) fchmodSync(fd, 0o600);
    return fd;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ELOOP") refuse(path, "it is a symbolic link", `remove it (rm ${path}) and run burrow again`);
    throw e;
  }
}

/**
 * Opens a sandbox's log (named by the daemon) for reading: null when there
 * is none yet; refused when it is a symbolic link, not a regular file, or
 * not the user's alone. O_NOFOLLOW, then fstat of what was opened, so a
 * swap between the check and the open cannot redirect the read.
 */
export function openPrivateLog(path: string, uid = geteuid()): number | null {
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
  let peer: ReturnType<typeof peerCredOfSocket>;
  try {
    peer = peerCredOfSocket(path);
  } catch (e) {
    if (e instanceof SysError && (e.code === "ECONNREFUSED" || e.code === "ENOENT")) return "absent";
    throw e;
  }
  if (peer.uid !== uid)
    refuse(path, `the process listening on it (pid ${peer.pid}) runs as uid ${peer.uid}, not as you (uid ${uid})`, "stop that process and remove the socket");
  return "ours";
}

/** Closes an fd, ignoring errors (for cleanup paths). */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {}
}
