// Unix stream sockets made by hand, for what Bun's sockets cannot do: carry
// fds (SCM_RIGHTS). The --accelerate listener of every enter step reaches
// the daemon's supervisor Worker through one (docs/accelerate.md).
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { check, errno, libc } from "./libc.ts";
import { SOCK_CLOEXEC, SOCK_STREAM } from "./net.ts";
import { SOCK_NONBLOCK } from "./netio.ts";
import { sockaddrUn } from "./unix-stream.ts";

export { connectUnix } from "./unix-stream.ts";

const { EINTR, EAGAIN } = ERRNO;
const AF_UNIX = 1;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_DONTWAIT = 0x40;
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLHUP = 0x10;

/** poll(2) on one fd: the revents (0 on timeout), EINTR retried. */
export function pollOnce(fd: number, events: number, timeoutMs: number): number {
  const pfd = new Uint8Array(8);
  const v = new DataView(pfd.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  let n: number;
  do n = libc.symbols.poll(pfd, 1, timeoutMs);
  while (n === -1 && errno() === EINTR);
  check("poll", n);
  return n === 0 ? 0 : v.getInt16(6, true);
}

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

/** A connected pair of close-on-exec unix stream sockets. */
export function socketPair(): [number, number] {
  const fds = new Int32Array(2);
  check("socketpair", libc.symbols.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
  return [fds[0]!, fds[1]!];
}

/**
 * Receives one fd sent with SCM_RIGHTS on `sock` (close-on-exec here),
 * with the one byte of data that carries it. null at end of stream.
 */
export function receiveFd(sock: number): number | null {
  const data = new Uint8Array(1);
  const iov = new BigUint64Array([BigInt(ptr(data)), 1n]);
  // struct cmsghdr (len u64, level i32, type i32) + one int, padded to 8.
  const control = new Uint8Array(24);
  const msg = new BigUint64Array(7); // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags
  msg[2] = BigInt(ptr(iov));
  msg[3] = 1n;
  msg[4] = BigInt(ptr(control));
  msg[5] = 24n;
  let n: number;
  do n = Number(libc.symbols.recvmsg(sock, msg, MSG_CMSG_CLOEXEC));
  while (n === -1 && errno() === EINTR);
  check("recvmsg", n);
  if (n === 0) return null;
  const v = new DataView(control.buffer);
  if (Number(v.getBigUint64(0, true)) < 20 || v.getInt32(8, true) !== SOL_SOCKET || v.getInt32(12, true) !== SCM_RIGHTS) {
    throw new Error("recvmsg: the message carried no fd");
  }
  return v.getInt32(16, true);
}
