// The small JSON records burrow keeps in its private runtime and state
// directories (holder.json, supervisor.json, cni/rootless-netns.json): read
// with O_NOFOLLOW, since in a private directory a symbolic link can only
// have been planted, and written
// atomically (a new file renamed over the old one) so a reader never sees
// half a file and two writers (the CLI, and the daemon rebuilding after a
// logout) never clash. The private directories themselves are made and
// checked here too (ensurePrivateDir), for the CLI (src/client/trust.ts)
// and the daemon alike.
//
// The checks on the path of every CLI call (ensurePrivateDir,
// checkOwnedPrivate) stat through src/sys/files.ts; the rest takes node:fs
// on first use (src/lazy-node.ts).
import type { Stats } from "node:fs";
import type * as v from "valibot";
import { BurrowError } from "./errors.ts";
import { nodeFs } from "./lazy-node.ts";
import { parseMessage } from "./messages.ts";
import { type FileStat, lstatPath, parentDir, statPath } from "./sys/files.ts";
import { geteuid } from "./sys/peercred.ts";

/** What the checks read of a file: node:fs's Stats or src/sys/files.ts's FileStat. */
type StatLike = Pick<Stats | FileStat, "mode" | "uid" | "isDirectory" | "isFile" | "isSocket" | "isSymbolicLink">;

/** The record at `path` if it exists and matches `schema`; null otherwise (a file that does not parse is no record). */
export function readPrivateRecord<S extends v.GenericSchema>(path: string, schema: S, what: string): v.InferOutput<S> | null {
  const { openSync, readFileSync, closeSync, constants } = nodeFs();
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return parseMessage(schema, readFileSync(fd, "utf8"), what);
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

/** Writes `value` as JSON to `dir/name`, mode 0600, through `dir/.name.PID`. */
export function writePrivateRecord(dir: string, name: string, value: unknown): void {
  const { rmSync, openSync, writeFileSync, closeSync, renameSync, constants } = nodeFs();
  const tmp = `${dir}/.${name}.${process.pid}`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    try {
      writeFileSync(fd, JSON.stringify(value));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, `${dir}/${name}`);
  } catch (e) {
    // A full disk or a failed rename leaves no temporary file behind.
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** A path on the way to the daemon that is not the user's alone. */
export class UntrustedPath extends BurrowError {
  constructor(message: string) {
    super(message, { kind: "untrusted" });
  }
}

export function refuse(path: string, what: string, fix: string): never {
  throw new UntrustedPath(`refusing to use ${path}: ${what}; ${fix}`);
}

const mode = (st: StatLike) => `0${(st.mode & 0o7777).toString(8)}`;

export function checkOwnedPrivate(path: string, st: StatLike, uid: number, type: "directory" | "socket" | "file"): void {
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
  const parent = parentDir(path);
  let st = lstatPath(path);
  if (!st) {
    const { mkdirSync, lstatSync } = nodeFs();
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
  // Gone since the lstat above (a race): node:fs's stat says so (ENOENT), as before.
  const pst = statPath(parent) ?? nodeFs().statSync(parent);
  if (pst.mode & 0o002 && !(pst.mode & 0o1000))
    refuse(
      path,
      `its parent ${parent} is writable by everyone without the sticky bit (mode ${mode(pst)})`,
      `fix it with: chmod o-w ${parent}, or point XDG_RUNTIME_DIR at a private directory`,
    );
}

/**
 * Opens a file in a checked directory for appending (created 0600), never
 * through a symbolic link: there a link can only be an attack or a mistake.
 */
export function openPrivateAppend(path: string, truncate = false): number {
  const { openSync, fstatSync, fchmodSync, closeSync, constants } = nodeFs();
  try {
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (truncate ? constants.O_TRUNC : constants.O_APPEND), 0o600);
    try {
      // One made by a looser umask (an older supervisor's `>>` after a logout) is made private again.
      const st = fstatSync(fd);
      if (st.isFile() && st.mode & 0o077 && st.uid === geteuid()) fchmodSync(fd, 0o600);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return fd;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ELOOP") refuse(path, "it is a symbolic link", `remove it (rm ${path}) and run burrow again`);
    throw e;
  }
}

/** True when `path` exists and is a private directory of ours (what ensurePrivateDir would accept); never makes it. */
export function isPrivateDir(path: string, uid = geteuid()): boolean {
  const st = lstatPath(path);
  if (!st) return false;
  try {
    checkOwnedPrivate(path, st, uid, "directory");
    return true;
  } catch {
    return false;
  }
}
