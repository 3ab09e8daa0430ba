// The port forwarder's relay primitives: bound sockets, pipes, splice(2),
// datagram I/O and epoll, used by the connector Worker
// (src/ports/connector-worker.ts) and, for binding, by the daemon's main thread.
//
// The symbols are in libc.ts's table (libc is opened once); errno is per
// thread and read right after each call, as everywhere in src/sys.
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { check, errno, libc, SysError } from "./libc.ts";
import { SOCK_CLOEXEC, SOCK_DGRAM, SOCK_STREAM } from "./net.ts";
import { close } from "./ns.ts";
import { SOCK_NONBLOCK, sockaddrOf } from "./netio.ts";

const sym = libc.symbols;

export const { EAGAIN, EINTR } = ERRNO;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
const SPLICE_F_MOVE = 1;
const SPLICE_F_NONBLOCK = 2;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_SETPIPE_SZ = 1031;
const F_GETPIPE_SZ = 1032;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_TCP = 6;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const TCP_NODELAY = 1;

export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 1 << 31;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CLOEXEC = O_CLOEXEC;

/** struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere (16). */
const EV_SIZE = process.arch === "x64" ? 12 : 16;
const EV_DATA = process.arch === "x64" ? 4 : 8;

/** A non-blocking, close-on-exec pipe; returns [readFd, writeFd]. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  check("pipe2", sym.pipe2(ptr(fds), O_NONBLOCK | O_CLOEXEC));
  return [fds[0]!, fds[1]!];
}

const FIONREAD = 0x541b;

/** How many bytes wait to be read on a pipe (FIONREAD); -1 when it cannot be asked (a closed fd). */
export function bytesReadable(fd: number): number {
  const n = new Int32Array(1);
  return sym.ioctl(fd, FIONREAD, ptr(n)) === -1 ? -1 : n[0]!;
}

/** Clears O_NONBLOCK: later writes wait for room instead of failing with EAGAIN. */
export function setBlocking(fd: number): void {
  const F_SETFL = 4;
  check("fcntl", sym.fcntl(fd, F_SETFL, 0), "F_SETFL");
}

/** Tries to resize a pipe; returns the size it has afterwards (unchanged when the user's pipe budget is spent). */
export function setPipeSize(fd: number, bytes: number): number {
  const r = sym.fcntl(fd, F_SETPIPE_SZ, bytes);
  return r > 0 ? r : sym.fcntl(fd, F_GETPIPE_SZ, 0);
}

/**
 * splice(2) without blocking, moving pages where it can. Returns the byte
 * count, 0 at end of input, or -errno (EAGAIN: nothing to read / no room).
 */
export function spliceNB(fdIn: number, fdOut: number, len: number): number {
  const n = Number(sym.splice(fdIn, null, fdOut, null, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
  return n >= 0 ? n : -errno();
}

export function shutdown(fd: number, how: number): void {
  sym.shutdown(fd, how); // ENOTCONN after a reset is fine: the peer is gone either way
}

/** Disables Nagle, as Go does for every TCP connection (rootlessport's behaviour). */
export function setNoDelay(fd: number): void {
  const one = new Int32Array([1]);
  sym.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, ptr(one), 4);
}

/**
 * A non-blocking TCP listening socket bound in the calling thread's netns.
 * Throws SysError (code EADDRINUSE, EACCES, EADDRNOTAVAIL, ...) on failure.
 * Returns the fd and the port actually bound.
 */
export function listenTcpSocket(host: string, port: number, backlog = 511): { fd: number; port: number } {
  const { buf, family } = sockaddrOf(host, port);
  const fd = check("socket", sym.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  try {
    // Like every server: rebinding while old connections sit in TIME_WAIT must work.
    const one = new Int32Array([1]);
    check("setsockopt", sym.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, ptr(one), 4), "SO_REUSEADDR");
    dualStack(fd, host);
    check("bind", sym.bind(fd, ptr(buf), buf.length), `${host}:${port}`);
    check("listen", sym.listen(fd, backlog));
    return { fd, port: boundPort(fd) };
  } catch (e) {
    close(fd);
    throw e;
  }
}

/**
 * A non-blocking UDP socket bound in the calling thread's netns, like
 * listenTcpSocket. No SO_REUSEADDR: for UDP it would let a second socket
 * share the port instead of reporting it in use.
 */
export function bindUdpSocket(host: string, port: number): { fd: number; port: number } {
  const { buf, family } = sockaddrOf(host, port);
  const fd = check("socket", sym.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  try {
    dualStack(fd, host);
    check("bind", sym.bind(fd, ptr(buf), buf.length), `${host}:${port}`);
    return { fd, port: boundPort(fd) };
  } catch (e) {
    close(fd);
    throw e;
  }
}

/**
 * "::" serves IPv4 clients too (as ::ffff:a.b.c.d), whatever
 * net.ipv6.bindv6only says: that is what publishing on all addresses means.
 */
function dualStack(fd: number, host: string): void {
  if (host !== "::") return;
  const zero = new Int32Array([0]);
  check("setsockopt", sym.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, ptr(zero), 4), "IPV6_V6ONLY");
}

/** getsockname(2): the local sockaddr of `fd` (28 bytes fit IPv4 and IPv6); empty on failure. */
export function socketName(fd: number): Uint8Array {
  const out = new Uint8Array(28);
  const len = new Uint32Array([out.length]);
  if (sym.getsockname(fd, ptr(out), ptr(len)) !== 0) return new Uint8Array(0);
  return out.subarray(0, len[0]);
}

/** getpeername(2): the remote sockaddr of a connected `fd` (the client of an accepted connection); empty on failure. */
export function peerName(fd: number): Uint8Array {
  const out = new Uint8Array(28);
  const len = new Uint32Array([out.length]);
  if (sym.getpeername(fd, ptr(out), ptr(len)) !== 0) return new Uint8Array(0);
  return out.subarray(0, len[0]);
}

function boundPort(fd: number): number {
  const out = new Uint8Array(28);
  const len = new Uint32Array([out.length]);
  check("getsockname", sym.getsockname(fd, ptr(out), ptr(len)));
  return (out[2]! << 8) | out[3]!;
}

/**
 * One datagram: recvfrom(2) into `buf`, the sender's sockaddr into `from`
 * (28 bytes fit IPv4 and IPv6) and its length into fromLen[0]. Returns the
 * datagram's size or -errno (EAGAIN when none is waiting).
 */
export function recvFrom(fd: number, buf: Uint8Array, from: Uint8Array, fromLen: Uint32Array): number {
  fromLen[0] = from.byteLength;
  const n = Number(sym.recvfrom(fd, ptr(buf), buf.byteLength, 0, ptr(from), ptr(fromLen)));
  return n >= 0 ? n : -errno();
}

/** sendto(2) of buf[0..len) to the sockaddr `to`; returns bytes or -errno. */
export function sendTo(fd: number, buf: Uint8Array, len: number, to: Uint8Array): number {
  const n = Number(sym.sendto(fd, ptr(buf), len, 0, ptr(to), to.byteLength));
  return n >= 0 ? n : -errno();
}

/** write(2) of buf[0..len) (one datagram on a connected UDP socket); bytes or -errno. */
export function writeNB(fd: number, buf: Uint8Array, len: number): number {
  const n = Number(sym.write(fd, ptr(buf), len));
  return n >= 0 ? n : -errno();
}

/** accept4(2): a non-blocking, close-on-exec connection, or -errno (EAGAIN when none is waiting). */
export function acceptNB(listenFd: number): number {
  const fd = sym.accept4(listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  return fd >= 0 ? fd : -errno();
}

export class Epoll {
  readonly fd = check("epoll_create1", sym.epoll_create1(EPOLL_CLOEXEC));
  private readonly one = new Uint8Array(16);
  private readonly oneView = new DataView(this.one.buffer);
  private readonly events: Uint8Array;
  private readonly view: DataView;
  constructor(readonly max = 256) {
    this.events = new Uint8Array(EV_SIZE * max);
    this.view = new DataView(this.events.buffer);
  }

  /** Watches `fd`; the fd number itself is the event's data. */
  add(fd: number, events: number): void {
    this.oneView.setUint32(0, events >>> 0, true);
    this.oneView.setUint32(EV_DATA, fd, true);
    this.oneView.setUint32(EV_DATA + 4, 0, true);
    check("epoll_ctl", sym.epoll_ctl(this.fd, EPOLL_CTL_ADD, fd, ptr(this.one)), `add ${fd}`);
  }

  remove(fd: number): void {
    sym.epoll_ctl(this.fd, EPOLL_CTL_DEL, fd, ptr(this.one));
  }

  /** Blocks the calling thread; calls `on(fd, events)` for each ready fd. */
  wait(timeoutMs: number, on: (fd: number, events: number) => void): void {
    const n = sym.epoll_wait(this.fd, ptr(this.events), this.max, timeoutMs);
    if (n < 0) {
      const e = errno();
      if (e === EINTR) return;
      throw new SysError("epoll_wait", e);
    }
    for (let i = 0; i < n; i++) {
      const base = i * EV_SIZE;
      on(this.view.getUint32(base + EV_DATA, true), this.view.getUint32(base, true));
    }
  }
}

/**
 * The same watch list as Epoll, waited on with poll(2): for a thread that
 * must be woken where the waker runs. A seccomp listener set to
 * SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP wakes its waiters "on the current
 * CPU"; poll's wake-up passes that on to the waiting thread, epoll's drops
 * it (ep_poll_callback wakes its waiters plainly), so an epoll waiter may be
 * woken on the other CPU (measured: the accelerator's short connections
 * 4-17 % slower, docs/benchmarks.md). Costs one pass over the list per
 * wait: for a list of a few dozen fds.
 *
 * Events and revents are poll(2)'s, the same numbers as EPOLLIN, EPOLLOUT,
 * EPOLLERR and EPOLLHUP here. An fd removed, or removed and added again, by
 * a callback of the same round is not reported from that round (its number
 * may name another file by then).
 */
export class PollSet {
  private readonly fds: number[] = [];
  private readonly gens: number[] = [];
  private buf = new Uint8Array(8 * 16);
  private view = new DataView(this.buf.buffer);
  private gen = 0;
  private readonly ready: number[] = [];

  /** Watches `fd` for `events` (POLLIN, POLLOUT; POLLERR and POLLHUP are always reported). */
  add(fd: number, events: number): void {
    const i = this.fds.length;
    if (this.buf.length < (i + 1) * 8) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    this.fds.push(fd);
    this.gens.push(++this.gen);
    this.view.setInt32(i * 8, fd, true);
    this.view.setInt16(i * 8 + 4, events, true);
  }

  remove(fd: number): void {
    const i = this.fds.indexOf(fd);
    if (i < 0) return;
    // The last entry takes its place.
    const last = this.fds.length - 1;
    if (i !== last) {
      this.fds[i] = this.fds[last]!;
      this.gens[i] = this.gens[last]!;
      this.view.setInt32(i * 8, this.view.getInt32(last * 8, true), true);
      this.view.setInt16(i * 8 + 4, this.view.getInt16(last * 8 + 4, true), true);
    }
    this.fds.pop();
    this.gens.pop();
  }

  get size(): number {
    return this.fds.length;
  }

  /** Blocks the calling thread; calls `on(fd, revents)` for each ready fd. */
  wait(timeoutMs: number, on: (fd: number, events: number) => void): void {
    const n = this.fds.length;
    const r = sym.poll(this.buf, n, timeoutMs);
    if (r < 0) {
      const e = errno();
      if (e === EINTR) return;
      throw new SysError("poll", e);
    }
    if (r === 0) return;
    // Collected first: the callbacks add and remove entries.
    const ready = this.ready;
    ready.length = 0;
    for (let i = 0; i < n; i++) {
      const revents = this.view.getUint16(i * 8 + 6, true);
      if (revents) ready.push(this.fds[i]!, this.gens[i]!, revents);
    }
    for (let k = 0; k < ready.length; k += 3) {
      const fd = ready[k]!;
      const i = this.fds.indexOf(fd);
      if (i < 0 || this.gens[i] !== ready[k + 1]) continue;
      on(fd, ready[k + 2]!);
    }
  }
}

/** read(2) into `buf`; returns bytes read, 0 at EOF, or -errno. */
export function readNB(fd: number, buf: Uint8Array): number {
  const n = Number(sym.read(fd, ptr(buf), buf.byteLength));
  return n >= 0 ? n : -errno();
}

/**
 * The read end of a command pipe carrying one JSON document per line (the
 * Workers that block in epoll_wait get their commands this way): `drain`
 * reads what is there without blocking and hands each whole line to `onLine`.
 * false once the writer has closed its end.
 */
export class LinePipe {
  private readonly buf = new Uint8Array(65536);
  private readonly decoder = new TextDecoder();
  private text = "";
  constructor(readonly fd: number) {}

  drain(onLine: (line: string) => void): boolean {
    for (;;) {
      const n = readNB(this.fd, this.buf);
      if (n === 0) return false;
      if (n < 0) return true; // EAGAIN (or EINTR): the rest comes with the next event
      this.text += this.decoder.decode(this.buf.subarray(0, n), { stream: true });
      let nl: number;
      while ((nl = this.text.indexOf("\n")) >= 0) {
        const line = this.text.slice(0, nl);
        this.text = this.text.slice(nl + 1);
        onLine(line);
      }
    }
  }
}

/** write(2) of all of `buf` to a pipe (≤ PIPE_BUF bytes is atomic); throws on failure. */
export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.byteLength) {
    const n = Number(sym.write(fd, ptr(buf, off), buf.byteLength - off));
    if (n < 0) {
      const e = errno();
      if (e === EINTR) continue;
      throw new SysError("write", e);
    }
    off += n;
  }
}
