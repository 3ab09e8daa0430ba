// A unix stream connection made by hand, blocking and close-on-exec: the
// CLI's to the daemon, whose listener it checks on that very connection
// (SO_PEERCRED, peercred.ts) before anything is sent, then writes its
// request at once and hands the fd to Bun for the reply (Bun.connect({fd}):
// src/client/unix-http.ts). Also the enter step's connection to the
// --accelerate handoff socket (unix-socket.ts re-exports it).
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { check, cstr, errno, libc, SysError } from "./libc.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;

export function sockaddrUn(path: string): Uint8Array {
  const p = cstr(path);
  // sun_path is 108 bytes, NUL included.
  if (p.length > 108) throw new SysError("connect", 36 /* ENAMETOOLONG */, path);
  const buf = new Uint8Array(2 + 108);
  new DataView(buf.buffer).setUint16(0, AF_UNIX, true);
  buf.set(p, 2);
  return buf;
}

/** A close-on-exec (blocking) connection to the unix socket at `path`; SysError (ENOENT, ECONNREFUSED, ...) when nothing listens there. */
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

/** Sends what the socket takes without waiting: the bytes sent, 0 when its buffer is full. No SIGPIPE (EPIPE is thrown). */
export function sendSome(fd: number, bytes: Uint8Array): number {
  if (!bytes.length) return 0;
  let n: number;
  do n = Number(libc.symbols.send(fd, ptr(bytes), bytes.length, MSG_DONTWAIT | MSG_NOSIGNAL));
  while (n === -1 && errno() === ERRNO.EINTR);
  if (n === -1 && errno() === ERRNO.EAGAIN) return 0;
  return check("send", n);
}
