// Who listens on a unix socket: connect to it and ask the kernel
// (SO_PEERCRED). The credentials are the listener's at the time it called
// listen(), translated into the caller's user namespace, so a rootless
// daemon (uid 0 of the holder's user namespace) shows up as the user's own
// host uid in the CLI. Host namespaces, any thread.
import { ptr } from "bun:ffi";
import { check, cstr, libc, SysError } from "./libc.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

function sockaddrUn(path: string): Uint8Array {
  const p = cstr(path);
  // sun_path is 108 bytes, NUL included.
  if (p.length > 108) throw new SysError("connect", 36 /* ENAMETOOLONG */, path);
  const buf = new Uint8Array(2 + 108);
  new DataView(buf.buffer).setUint16(0, AF_UNIX, true);
  buf.set(p, 2);
  return buf;
}

/**
 * Connects to the unix socket at `path`, reads its listener's credentials
 * and closes the connection. Throws SysError (ENOENT, ECONNREFUSED, ...)
 * when nothing listens there.
 */
export function peerCredOfSocket(path: string): PeerCred {
  const fd = check("socket", libc.symbols.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  try {
    const addr = sockaddrUn(path);
    check("connect", libc.symbols.connect(fd, ptr(addr), addr.length), path);
    const cred = new Int32Array(3);
    const len = new Uint32Array([12]);
    check("getsockopt", libc.symbols.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ptr(cred), ptr(len)), "SO_PEERCRED");
    return { pid: cred[0]!, uid: cred[1]! >>> 0, gid: cred[2]! >>> 0 };
  } finally {
    libc.symbols.close(fd);
  }
}

export function geteuid(): number {
  return libc.symbols.geteuid();
}
