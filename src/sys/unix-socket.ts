// Unix stream sockets made by hand, for what Bun's sockets cannot do: carry
// fds (SCM_RIGHTS). The --accelerate listener of every enter step reaches
// the daemon's supervisor Worker through one (docs/accelerate.md).
import { ptr } from "bun:ffi";
import { check, errno, libc } from "./libc.ts";
import { SOCK_NONBLOCK } from "./netio.ts";
import { sockaddrUn } from "./peercred.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_DONTWAIT = 0x40;
const EINTR = 4;
const EAGAIN = 11;

/** A non-blocking, close-on-exec unix stream socket listening at `path` (which must not exist). */
export function listenUnix(path: string, backlog = 64): number {
  const fd = check("socket", libc.symbols.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  try {
    const addr = sockaddrUn(path);
    check("bind", libc.symbols.bind(fd, ptr(addr), addr.length), path);
    check("listen", libc.symbols.listen(fd, backlog), path);
    return fd;
  } catch (e) {
    libc.symbols.close(fd);
    throw e;
  }
}

/** A close-on-exec (blocking) connection to the unix socket at `path`. */
export function connectUnix(path: string): number {
  const fd = check("socket", libc.symbols.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  try {
    const addr = sockaddrUn(path);
    check("connect", libc.symbols.connect(fd, ptr(addr), addr.length), path);
    return fd;
  } catch (e) {
    libc.symbols.close(fd);
    throw e;
  }
}

/**
 * One non-blocking recvmsg on `sock`: the bytes read (0 at end of stream,
 * -1 when nothing is there yet) and the fds that came with them
 * (close-on-exec here). The caller owns the fds.
 */
export function receiveWithFds(sock: number, buf: Uint8Array): { n: number; fds: number[] } {
  const iov = new BigUint64Array([BigInt(ptr(buf)), BigInt(buf.length)]);
  // Room for a few fds: a peer sending more than we expect has them closed by the caller, not leaked.
  const control = new Uint8Array(64);
  const msg = new BigUint64Array(7);
  msg[2] = BigInt(ptr(iov));
  msg[3] = 1n;
  msg[4] = BigInt(ptr(control));
  msg[5] = BigInt(control.length);
  let n: number;
  do n = Number(libc.symbols.recvmsg(sock, msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT));
  while (n === -1 && errno() === EINTR);
  if (n === -1 && errno() === EAGAIN) return { n: -1, fds: [] };
  check("recvmsg", n);
  const fds: number[] = [];
  const v = new DataView(control.buffer);
  const controlLen = Number(msg[5]);
  for (let off = 0; off + 16 <= controlLen; ) {
    const len = Number(v.getBigUint64(off, true));
    if (len < 16) break;
    if (v.getInt32(off + 8, true) === SOL_SOCKET && v.getInt32(off + 12, true) === SCM_RIGHTS) {
      for (let p = off + 16; p + 4 <= off + len; p += 4) fds.push(v.getInt32(p, true));
    }
    off += (len + 7) & ~7;
  }
  return { n, fds };
}
