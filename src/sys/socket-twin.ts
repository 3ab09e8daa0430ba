// A host-side twin of a sandboxed process's socket, for --accelerate
// (docs/accelerate.md): the shape and options are read from the process's
// own socket (a pidfd_getfd copy), never from a record of its setsockopt
// calls, and copied onto a socket made in the supervisor's network namespace.
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { check, errno, libc } from "./libc.ts";
import { AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_STREAM } from "./net.ts";
import { SOCK_NONBLOCK } from "./netio.ts";
import { POLLOUT, pollOnce } from "./unix-socket.ts";

const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SO_ERROR = 4;
const SO_PROTOCOL = 38;
const SO_DOMAIN = 39;
const IPPROTO_IP = 0;
const IPPROTO_TCP = 6;
const IPPROTO_IPV6 = 41;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
const ENOTCONN = 107;
export const { EINPROGRESS } = ERRNO;

/** The int-valued options copied to the twin: what a client sets before connect and expects to keep. */
const COPIED_OPTIONS: ReadonlyArray<{ level: number; name: number; families?: number[] }> = [
  { level: SOL_SOCKET, name: 2 }, // SO_REUSEADDR
  { level: SOL_SOCKET, name: 9 }, // SO_KEEPALIVE
  { level: SOL_SOCKET, name: 12 }, // SO_PRIORITY
  { level: SOL_SOCKET, name: 15 }, // SO_REUSEPORT
  { level: IPPROTO_TCP, name: 1 }, // TCP_NODELAY
  { level: IPPROTO_TCP, name: 4 }, // TCP_KEEPIDLE
  { level: IPPROTO_TCP, name: 5 }, // TCP_KEEPINTVL
  { level: IPPROTO_TCP, name: 6 }, // TCP_KEEPCNT
  { level: IPPROTO_TCP, name: 18 }, // TCP_USER_TIMEOUT
  { level: IPPROTO_IP, name: 1, families: [AF_INET] }, // IP_TOS
  { level: IPPROTO_IPV6, name: 26, families: [AF_INET6] }, // IPV6_V6ONLY
];
/** SO_LINGER: struct linger, two ints. */
const SO_LINGER = 13;

export interface SocketShape {
  family: number;
  /** SOCK_STREAM, SOCK_DGRAM, ... (without the creation flags). */
  type: number;
  protocol: number;
  nonblocking: boolean;
  connected: boolean;
  /** The local port it is bound to, 0 when unbound. */
  boundPort: number;
}

// One set of buffers per thread (module state is per Worker): the supervisor's hot path allocates nothing here.
// Passed as typed arrays (bun:ffi takes each one's address at the call): a pointer kept from ptr() could go stale if the engine moves a small array.
const optionValue = new Int32Array(2);
const optionLength = new Uint32Array(1);
const addressBuffer = new Uint8Array(128);
const addressLength = new Uint32Array(1);

/** An int-valued socket option of `fd`; null when it cannot be read. */
export function intOption(fd: number, level: number, name: number): number | null {
  optionLength[0] = 4;
  return libc.symbols.getsockopt(fd, level, name, optionValue, optionLength) === 0 ? optionValue[0]! : null;
}

function setIntOption(fd: number, level: number, name: number, value: number): void {
  optionValue[0] = value;
  libc.symbols.setsockopt(fd, level, name, optionValue, 4);
}

/** SO_LINGER's struct linger as [onoff, seconds]; null when unreadable. */
function lingerOption(fd: number): [number, number] | null {
  optionLength[0] = 8;
  return libc.symbols.getsockopt(fd, SOL_SOCKET, SO_LINGER, optionValue, optionLength) === 0 ? [optionValue[0]!, optionValue[1]!] : null;
}

/**
 * What kind of socket `fd` is, and whether it is bound or connected yet. Throws when `fd` is not a socket.
 * `fileFlags`: its open file's flags when the caller has them already (one fcntl fewer).
 * Three to five syscalls: the family comes with getsockname's address (an unbound inet socket names its
 * family too), and an inet socket without a local port cannot be connected (connect binds one), so
 * getpeername is asked only of a bound one.
 */
export function socketShape(fd: number, fileFlags = -1): SocketShape {
  const type = intOption(fd, SOL_SOCKET, SO_TYPE);
  if (type === null) check("getsockopt", -1, "SO_TYPE");
  const protocol = intOption(fd, SOL_SOCKET, SO_PROTOCOL) ?? -1;
  const flags = fileFlags >= 0 ? fileFlags : check("fcntl", libc.symbols.fcntl(fd, F_GETFL, 0), "F_GETFL");
  addressLength[0] = addressBuffer.length;
  let family = -1;
  let boundPort = 0;
  if (libc.symbols.getsockname(fd, addressBuffer, addressLength) === 0 && addressLength[0]! >= 2) {
    family = addressBuffer[0]! | (addressBuffer[1]! << 8);
    if (family === AF_INET || family === AF_INET6) boundPort = (addressBuffer[2]! << 8) | addressBuffer[3]!;
  } else family = intOption(fd, SOL_SOCKET, SO_DOMAIN) ?? -1;
  let connected = false;
  if (boundPort !== 0 || (family !== AF_INET && family !== AF_INET6)) {
    addressLength[0] = addressBuffer.length;
    connected = libc.symbols.getpeername(fd, addressBuffer, addressLength) === 0 || errno() !== ENOTCONN;
  }
  return { family, type: type!, protocol, nonblocking: (flags & O_NONBLOCK) !== 0, connected, boundPort };
}

/**
 * The copied options' values on a fresh TCP socket of `family` in this
 * thread's network namespace, read once: a twin is made with exactly these,
 * so only the options whose value differs need a setsockopt (half the
 * syscalls of reading the twin's own each time).
 */
const freshDefaults = new Map<number, Array<number | null>>();
function defaultsFor(family: number): Array<number | null> {
  let d = freshDefaults.get(family);
  if (d) return d;
  const fd = check("socket", libc.symbols.socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  try {
    d = COPIED_OPTIONS.map((o) => (o.families && !o.families.includes(family) ? null : intOption(fd, o.level, o.name)));
  } finally {
    libc.symbols.close(fd);
  }
  freshDefaults.set(family, d);
  return d;
}

/**
 * A new TCP socket in the calling thread's network namespace with `shape`'s
 * family and `from`'s options, non-blocking (the supervisor never waits on a
 * connect) and close-on-exec here. The caller sets the blocking mode the
 * process wants before it installs the twin.
 */
export function tcpTwin(from: number, shape: SocketShape): number {
  if (shape.type !== SOCK_STREAM) throw new Error("only TCP sockets have twins");
  const defaults = defaultsFor(shape.family);
  const fd = check("socket", libc.symbols.socket(shape.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  for (let i = 0; i < COPIED_OPTIONS.length; i++) {
    const o = COPIED_OPTIONS[i]!;
    if (o.families && !o.families.includes(shape.family)) continue;
    const v = intOption(from, o.level, o.name);
    if (v === null || v === defaults[i]) continue;
    // Best effort, as the process's own setsockopt was: an option the host refuses is left at its default.
    setIntOption(fd, o.level, o.name, v);
  }
  const linger = lingerOption(from);
  if (linger?.[0]) {
    optionValue[0] = linger[0];
    optionValue[1] = linger[1];
    libc.symbols.setsockopt(fd, SOL_SOCKET, SO_LINGER, optionValue, 8);
  }
  return fd;
}

/** Starts connecting `fd` (non-blocking) to the sockaddr `addr`: 0 when connected at once, EINPROGRESS, or the errno of an immediate failure. */
export function connectSockaddr(fd: number, addr: Uint8Array): number {
  if (libc.symbols.connect(fd, ptr(addr), addr.length) === 0) return 0;
  return errno();
}

/** SO_ERROR: the outcome of a finished non-blocking connect (0 = connected). */
export function socketError(fd: number): number {
  return intOption(fd, SOL_SOCKET, SO_ERROR) ?? errno();
}

/** Sets or clears O_NONBLOCK on `fd`'s open file (shared with every copy of it, the process's included). */
export function setNonBlocking(fd: number, on: boolean): void {
  const flags = check("fcntl", libc.symbols.fcntl(fd, F_GETFL, 0), "F_GETFL");
  check("fcntl", libc.symbols.fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK), "F_SETFL");
}

/** Waits up to `timeoutMs` for `fd` to be writable (a non-blocking connect has ended, either way). */
export function waitWritable(fd: number, timeoutMs: number): boolean {
  return pollOnce(fd, POLLOUT, timeoutMs) !== 0;
}
