// The few file calls on the path of every `run` and `exec` (the trust checks
// of the runtime dir and control socket, the daemon's version record, the
// enter helper's memfd: src/sys/sockets.ts writeAll), on libc instead of node:fs: loading node:fs costs a
// CLI start ~1.4 ms (measured in a compiled program), more than everything
// these calls do (docs/decisions.md "node:fs, node:os and node:path off the
// CLI's path"). Everything else keeps node:fs, through src/node-lazy.ts where
// a module is on that path.
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { cstr, errno, libc, SysError } from "./libc.ts";

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
/** type, mode, nlink, uid, gid, ino, size: what the callers read. */
const STATX_BASIC_STATS = 0x7ff;
const { ENOENT, EINTR } = ERRNO;
const O_RDONLY = 0;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFSOCK = 0o140000;

/**
 * What statx(2) said of a file: the fields burrow reads, and node:fs Stats'
 * type tests, so that a check written against Stats (src/private-file.ts)
 * takes either.
 */
export class FileStat {
  constructor(
    readonly mode: number,
    readonly uid: number,
    readonly gid: number,
    readonly nlink: number,
    readonly ino: number,
    readonly size: number,
  ) {}
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR;
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === S_IFREG;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === S_IFLNK;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === S_IFSOCK;
  }
}

// struct statx has one layout on every architecture (include/uapi/linux/stat.h).
const STATX_SIZE = 256;

/** Decodes a struct statx (exported for the unit test). */
export function decodeStatx(b: Buffer): FileStat {
  return new FileStat(
    b.readUInt16LE(28), // stx_mode
    b.readUInt32LE(20), // stx_uid
    b.readUInt32LE(24), // stx_gid
    b.readUInt32LE(16), // stx_nlink
    Number(b.readBigUInt64LE(32)), // stx_ino
    Number(b.readBigUInt64LE(40)), // stx_size
  );
}

function statx(fd: number, path: string, flags: number, what: string): FileStat | null {
  const buf = Buffer.alloc(STATX_SIZE);
  const p = cstr(path);
  if (libc.symbols.statx(fd, ptr(p), flags, STATX_BASIC_STATS, ptr(buf)) === -1) {
    const err = errno();
    if (err === ENOENT) return null;
    throw new SysError("statx", err, what);
  }
  return decodeStatx(buf);
}

/** lstat(2): the link itself, not what it points to; null when nothing is there. */
export function lstatPath(path: string): FileStat | null {
  return statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, path);
}

/** stat(2), following links; null when nothing is there. */
export function statPath(path: string): FileStat | null {
  return statx(AT_FDCWD, path, 0, path);
}

/** fstat(2) of an open fd. */
export function fstatFd(fd: number): FileStat {
  const st = statx(fd, "", AT_EMPTY_PATH, `fd ${fd}`);
  if (!st) throw new SysError("statx", ENOENT, `fd ${fd}`);
  return st;
}

const O_WRONLY = 1;
const O_NONBLOCK = 0o4000;

/**
 * A FIFO made at `path` (mode 0600; it must not exist) and opened at both
 * ends, non-blocking and close-on-exec: [read end, write end]. The write
 * end through the read end's /proc/self/fd link, not the name: whoever
 * removes the name once the read end is open (the daemon, done with it)
 * cannot make it fail. Nothing is left at `path` when it fails.
 */
export function makeFifo(path: string): [number, number] {
  const p = cstr(path);
  if (libc.symbols.mkfifoat(AT_FDCWD, ptr(p), 0o600) === -1) throw new SysError("mkfifo", errno(), path);
  const ends: number[] = [];
  try {
    const open = (target: Buffer, flags: number): number => {
      const fd = libc.symbols.open(ptr(target), flags | O_NONBLOCK | O_CLOEXEC, 0);
      if (fd === -1) throw new SysError("open", errno(), path);
      ends.push(fd);
      return fd;
    };
    const read = open(p, O_RDONLY | O_NOFOLLOW);
    return [read, open(cstr(`/proc/self/fd/${read}`), O_WRONLY)];
  } catch (e) {
    for (const fd of ends) libc.symbols.close(fd);
    // The open's error is the one to report, not a failed removal's.
    try {
      removeFile(path);
    } catch {}
    throw e;
  }
}

/** unlink(2) that accepts "already gone". */
export function removeFile(path: string): void {
  if (libc.symbols.unlink(ptr(cstr(path))) === -1 && errno() !== ENOENT) throw new SysError("unlink", errno(), path);
}

/**
 * A small file's whole text (utf8), or null when it does not exist. With
 * `nofollow`, a symbolic link in the last component is refused (ELOOP).
 */
export function readTextFile(path: string, opts: { nofollow?: boolean } = {}): string | null {
  const fd = libc.symbols.open(ptr(cstr(path)), O_RDONLY | O_CLOEXEC | (opts.nofollow ? O_NOFOLLOW : 0), 0);
  if (fd === -1) {
    const err = errno();
    if (err === ENOENT) return null;
    throw new SysError("open", err, path);
  }
  try {
    const parts: Buffer[] = [];
    for (;;) {
      const chunk = Buffer.allocUnsafe(4096);
      const n = Number(libc.symbols.read(fd, ptr(chunk), chunk.length));
      if (n === -1) {
        const err = errno();
        if (err === EINTR) continue;
        throw new SysError("read", err, path);
      }
      if (n === 0) break;
      parts.push(chunk.subarray(0, n));
    }
    return Buffer.concat(parts).toString("utf8");
  } finally {
    libc.symbols.close(fd);
  }
}

/** The directory part of a path without repeated slashes (burrow's own paths), as node:path's dirname gives it. */
export function parentDir(path: string): string {
  let end = path.length;
  while (end > 1 && path[end - 1] === "/") end--;
  const slash = path.lastIndexOf("/", end - 1);
  if (slash < 0) return ".";
  return slash === 0 ? "/" : path.slice(0, slash);
}
