// Who is on the other end of a unix socket, asked of the kernel
// (SO_PEERCRED). The credentials are the peer's at the time it called
// connect() (or, for a listener, listen()), translated into the caller's
// user namespace: a rootless daemon (uid 0 of the holder's user namespace)
// shows up as the user's own host uid in the CLI, the CLI as uid 0 in the
// daemon, and a uid the holder's namespace does not map (another user, host
// root too) as the overflow uid 65534. Host namespaces or the holder's, any
// thread.
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { check, cstr, errno, libc, SysError } from "./libc.ts";
import { connectUnix } from "./unix-stream.ts";

const AF_UNIX = 1;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_ACCEPTCONN = 30;
const SO_COOKIE = 57;

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * Connects to the unix socket at `path`, reads its listener's credentials
 * and closes the connection. Throws SysError (ENOENT, ECONNREFUSED, ...)
 * when nothing listens there.
 */
export function peerCredOfSocket(path: string): PeerCred {
  const fd = connectUnix(path);
  try {
    return peerCredOfFd(fd);
  } finally {
    libc.symbols.close(fd);
  }
}

// Scratch buffers of the calls below: each thread has its own module
// instance, and nothing here yields, so one set per thread is enough.
const cred = new Int32Array(3);
const int = new Int32Array(1);
const cookie = new BigUint64Array(1);
const optLen = new Uint32Array(1);
const addr = new Uint8Array(2 + 108);

/** The credentials of the peer of the connected unix socket `fd`. */
export function peerCredOfFd(fd: number): PeerCred {
  optLen[0] = 12;
  check("getsockopt", libc.symbols.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ptr(cred), ptr(optLen)), "SO_PEERCRED");
  return { pid: cred[0]!, uid: cred[1]! >>> 0, gid: cred[2]! >>> 0 };
}

/**
 * The socket's kernel cookie (SO_COOKIE, Linux 4.12): unique among all
 * sockets since boot and never reused, so (fd, cookie) names one
 * connection for good. Null when `fd` is not an open socket; throws
 * SysError for anything else (a kernel without SO_COOKIE), so that a
 * caller checking sockets fails closed rather than seeing none.
 */
export function socketCookie(fd: number): bigint | null {
  optLen[0] = 8;
  if (libc.symbols.getsockopt(fd, SOL_SOCKET, SO_COOKIE, ptr(cookie), ptr(optLen)) === 0) return cookie[0]!;
  const err = errno();
  if (err === ERRNO.ENOTSOCK || err === ERRNO.EBADF) return null;
  throw new SysError("getsockopt", err, "SO_COOKIE");
}

/**
 * The path a unix socket is bound to (getsockname). A connection accepted
 * from a listener reports the listener's path as it was at bind() time,
 * even after the file was renamed. Null for other families, unnamed and
 * abstract sockets, and fds that are not open sockets.
 */
export function unixSocketPath(fd: number): string | null {
  optLen[0] = addr.length;
  if (libc.symbols.getsockname(fd, ptr(addr), ptr(optLen)) !== 0) return null;
  const len = Math.min(optLen[0]!, addr.length);
  if (len <= 2 || (addr[0]! | (addr[1]! << 8)) !== AF_UNIX || addr[2] === 0) return null;
  const end = addr.indexOf(0, 2);
  return Buffer.from(addr.subarray(2, end === -1 || end > len ? len : end)).toString("utf8");
}

/** Is the socket `fd` a listener (SO_ACCEPTCONN)? */
export function isListening(fd: number): boolean {
  optLen[0] = 4;
  check("getsockopt", libc.symbols.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, ptr(int), ptr(optLen)), "SO_ACCEPTCONN");
  return int[0] !== 0;
}

/** openFds's buffers: the daemon's, made on its first call (a CLI start that checks its socket never needs them). */
let listing: { dents: Uint8Array; view: DataView; procFd: Uint8Array } | null = null;

/**
 * The calling process's open fds, from /proc/self/fd (getdents64: Bun's
 * readdirSync costs about twice as much per entry). Other threads may open
 * and close fds meanwhile; the list is a snapshot.
 */
export function openFds(): number[] {
  listing ??= (() => {
    const dents = new Uint8Array(32 * 1024);
    return { dents, view: new DataView(dents.buffer), procFd: cstr("/proc/self/fd") };
  })();
  const { dents, view: dentsView, procFd } = listing;
  const dir = check("open", libc.symbols.open(ptr(procFd), O_DIRECTORY | O_CLOEXEC, 0), "/proc/self/fd");
  const fds: number[] = [];
  try {
    for (;;) {
      const got = Number(libc.symbols.getdents64(dir, ptr(dents), dents.length));
      if (got === -1) check("getdents64", -1, "/proc/self/fd");
      if (got <= 0) break;
      // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
      for (let off = 0; off < got; off += dentsView.getUint16(off + 16, true)) {
        let fd = 0;
        let p = off + 19;
        for (; dents[p] !== 0; p++) {
          const digit = dents[p]! - 48;
          if (digit < 0 || digit > 9) break;
          fd = fd * 10 + digit;
        }
        // "." and ".." stop at their first byte.
        if (dents[p] === 0 && p > off + 19 && fd !== dir) fds.push(fd);
      }
    }
  } finally {
    libc.symbols.close(dir);
  }
  return fds;
}

export function geteuid(): number {
  return libc.symbols.geteuid();
}
