// Namespaces: unshare/setns. Callers run these only in a single-threaded
// re-exec'd role or on a Worker thread that owns the namespace it moves into
// (DESIGN.md "Hard facts about Bun").
import { check, cstr, errno, libc } from "./libc.ts";
import { errnoName } from "./errno.ts";

export const CLONE = {
  FS: 0x00000200,
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
/** statfs f_type of the namespace filesystem (/proc/PID/ns/* and their bind mounts). */
const NSFS_MAGIC = 0x6e736673;

export function unshare(flags: number): void {
  check("unshare", libc.symbols.unshare(flags));
}

/**
 * Opens a namespace file (or any path) read-only, close-on-exec. Never
 * blocks: a FIFO planted where a namespace file was expected opens at once
 * (O_NONBLOCK) and setns then refuses it, instead of hanging the thread.
 */
export function openRO(path: string): number {
  const p = cstr(path);
  return check("open", libc.symbols.open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0), path);
}

export function close(fd: number): void {
  libc.symbols.close(fd);
}

export function setns(fd: number, nstype: number, what = ""): void {
  check("setns", libc.symbols.setns(fd, nstype), what);
}

/** Opens `path` and joins the namespace behind it. */
export function join(path: string, nstype: number): void {
  const fd = openRO(path);
  try {
    setns(fd, nstype, path);
  } finally {
    close(fd);
  }
}

const AT_FDCWD = -100;
const linkBuffer = Buffer.alloc(256);

/**
 * The inode identity of a namespace link ("net:[4026531840]"), or null if
 * gone (or not ours to read). libc's readlinkat, not readlinkSync: a scan
 * of /proc (pidsInNs) meets mostly other users' processes, and an
 * exception for each cost a sandbox's exit report ~0.2 ms.
 */
export function nsId(path: string): string | null {
  const n = Number(libc.symbols.readlinkat(AT_FDCWD, cstr(path), linkBuffer, linkBuffer.length));
  return n < 0 || n >= linkBuffer.length ? null : linkBuffer.toString("latin1", 0, n);
}

export function gettid(): number {
  return libc.symbols.gettid();
}

const NS_GET_USERNS = 0xb701;
const NS_GET_NSTYPE = 0xb703;

/** Why a path someone gave as a namespace cannot be joined (namespaceFile). */
export type NamespaceFileRefusal =
  | { why: "absent" }
  | { why: "denied" }
  | { why: "not-namespace" }
  | { why: "other-type"; type: number | null }
  /** Owned by a user namespace this process has no rights in (the host's, another user's). */
  | { why: "not-owned" }
  | { why: "error"; detail: string };

/**
 * Checks a path from a request as a namespace of type `nstype` that this
 * process may join, without ever blocking or opening anything else: O_PATH
 * opens nothing (a FIFO, a device, a socket are only looked at), fstatfs
 * says whether it is an nsfs file, and only then is that very inode reopened
 * read-only through /proc/self/fd. Magic links such as /proc/PID/ns/net are
 * followed (that is how they are used); whatever they lead to must be nsfs.
 * Returns the open fd (the caller closes it) or why not. Any thread.
 */
export function namespaceFile(path: string, nstype: number): { fd: number } | NamespaceFileRefusal {
  const pathFd = libc.symbols.open(cstr(path), O_PATH | O_CLOEXEC, 0);
  if (pathFd < 0) {
    const code = errnoName(errno());
    if (code === "ENOENT" || code === "ENOTDIR") return { why: "absent" };
    if (code === "EACCES" || code === "EPERM") return { why: "denied" };
    return { why: "error", detail: code };
  }
  let fd = -1;
  try {
    const st = Buffer.alloc(128); // struct statfs: f_type is its first field (a long)
    check("fstatfs", libc.symbols.fstatfs(pathFd, st), path);
    if (Number(st.readBigInt64LE(0)) !== NSFS_MAGIC) return { why: "not-namespace" };
    fd = check("open", libc.symbols.open(cstr(`/proc/self/fd/${pathFd}`), O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0), path);
    const type = libc.symbols.ioctl(fd, NS_GET_NSTYPE, null);
    if (type !== nstype) return { why: "other-type", type: type < 0 ? null : type };
    // setns needs CAP_SYS_ADMIN in the namespace's owning user namespace:
    // the kernel hands that one out only when it is ours or below ours.
    const owner = libc.symbols.ioctl(fd, NS_GET_USERNS, null);
    if (owner < 0) {
      const code = errnoName(errno());
      return code === "EPERM" ? { why: "not-owned" } : { why: "error", detail: code };
    }
    close(owner);
    const ok = { fd };
    fd = -1;
    return ok;
  } catch (e) {
    return { why: "error", detail: (e as Error).message };
  } finally {
    if (fd >= 0) close(fd);
    close(pathFd);
  }
}
