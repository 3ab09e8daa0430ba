// Non-blocking socket setup for the port forwarder's connector Worker.
//
// A blocking connect() would wait for the handshake. The connector is ONE
// thread shared by every sandbox, so a sandbox whose service drops SYNs
// (full accept queue, firewall) would stall every other sandbox's forwards
// for up to two minutes. Here the socket is created non-blocking and connect()
// only starts the handshake; the connector's epoll loop sees it complete
// (writable) or fail (a refusal surfaces as an error from the first splice).
import { ptr } from "bun:ffi";
import { isIPv4, isIPv6 } from "../ip-syntax.ts";
import { ERRNO } from "./errno.ts";
import { check, errno, libc, SysError } from "./libc.ts";
import { AF_INET, AF_INET6, ipv6Bytes, SOCK_CLOEXEC, SOCK_DGRAM } from "./net.ts";
import { close } from "./ns.ts";

export const SOCK_NONBLOCK = 0o4000;
const EINPROGRESS = 115;

/**
 * Whether a sockaddr (as accept/recvfrom/getsockname fill it) is a real
 * IPv6 address: AF_INET6 and not an IPv4-mapped ::ffff:a.b.c.d, which is
 * how a dual-stack socket shows an IPv4 peer. Pure.
 */
export function isIPv6Sockaddr(addr: Uint8Array): boolean {
  if (addr.length < 24 || (addr[0]! | (addr[1]! << 8)) !== AF_INET6) return false;
  for (let i = 8; i < 18; i++) if (addr[i] !== 0) return true;
  return !(addr[18] === 0xff && addr[19] === 0xff);
}

/**
 * The calling thread's netns's own global IPv6 address: the source the
 * kernel picks towards a global destination (a UDP connect sends nothing).
 * null when there is none yet (no route, or only tentative, link-local or
 * loopback addresses).
 */
export function ownGlobalIPv6(): string | null {
  const { buf, family } = sockaddrOf("2001:db8::1", 9); // documentation prefix: routed by default, never reached
  const fd = libc.symbols.socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return null;
  try {
    if (libc.symbols.connect(fd, ptr(buf), buf.length) !== 0) return null;
    const name = new Uint8Array(28);
    const len = new Uint32Array([name.length]);
    if (libc.symbols.getsockname(fd, ptr(name), ptr(len)) !== 0 || !isIPv6Sockaddr(name)) return null;
    const groups: string[] = [];
    for (let i = 8; i < 24; i += 2) groups.push(((name[i]! << 8) | name[i + 1]!).toString(16));
    const text = groups.join(":");
    return /^(0:){7}[01]$|^fe[89ab]/.test(text) ? null : text;
  } finally {
    close(fd);
  }
}

/** struct sockaddr_in / sockaddr_in6 for an IP literal. */
export function sockaddrOf(host: string, port: number): { buf: Uint8Array; family: number } {
  if (isIPv4(host)) {
    const buf = new Uint8Array(16);
    const dv = new DataView(buf.buffer);
    dv.setUint16(0, AF_INET, true);
    dv.setUint16(2, port, false);
    buf.set(host.split(".").map(Number), 4);
    return { buf, family: AF_INET };
  }
  if (isIPv6(host)) {
    const buf = new Uint8Array(28);
    const dv = new DataView(buf.buffer);
    dv.setUint16(0, AF_INET6, true);
    dv.setUint16(2, port, false);
    buf.set(ipv6Bytes(host), 8);
    return { buf, family: AF_INET6 };
  }
  throw new Error(`not an IP address: ${host}`);
}

/**
 * Creates a non-blocking socket in the calling thread's network namespace and
 * starts connecting it to host:port. Returns the fd (owned by the caller) as
 * soon as the handshake is under way; errors known at once (no route, bad
 * address, a refusal the kernel reports synchronously) throw SysError.
 */
export function connectStart(host: string, port: number, type: number): number {
  const { buf, family } = sockaddrOf(host, port);
  const fd = check("socket", libc.symbols.socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (libc.symbols.connect(fd, ptr(buf), buf.length) === -1) {
    const err = errno();
    if (err !== EINPROGRESS) {
      close(fd);
      throw new SysError("connect", err, `${host}:${port}`);
    }
  }
  return fd;
}

const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_MARK = 36;
const SOL_IP = 0;
const IP_TRANSPARENT = 19;
const SOL_IPV6 = 41;
const IPV6_TRANSPARENT = 75;

/**
 * A client's sockaddr as the sandbox side must use it: an IPv4-mapped
 * ::ffff:a.b.c.d (an IPv4 client of a dual-stack listener) becomes a plain
 * sockaddr_in; anything else is returned as it is. Pure.
 */
export function unmappedSockaddr(addr: Uint8Array): Uint8Array {
  if (addr.length < 24 || (addr[0]! | (addr[1]! << 8)) !== AF_INET6 || isIPv6Sockaddr(addr)) return addr;
  const out = new Uint8Array(16);
  out[0] = AF_INET & 0xff;
  out[2] = addr[2]!; // port, network order
  out[3] = addr[3]!;
  out.set(addr.subarray(20, 24), 4);
  return out;
}

/** The family of a sockaddr (AF_INET, AF_INET6), 0 for an empty or short one. Pure. */
export function sockaddrFamily(addr: Uint8Array): number {
  return addr.length < 2 ? 0 : addr[0]! | (addr[1]! << 8);
}

/** Whether a sockaddr is a loopback address: 127/8, ::1 or ::ffff:127.x.y.z. Pure. */
export function isLoopbackSockaddr(addr: Uint8Array): boolean {
  const a = unmappedSockaddr(addr);
  const family = sockaddrFamily(a);
  if (family === AF_INET) return a.length >= 8 && a[4] === 127;
  if (family !== AF_INET6 || a.length < 24) return false;
  for (let i = 8; i < 23; i++) if (a[i] !== 0) return false;
  return a[23] === 1;
}

/**
 * Like connectStart, but the socket is IP_TRANSPARENT, marked with `mark`
 * (SO_MARK) and bound to `from` (a sockaddr of the same family as `host`,
 * normally an address this netns does not have: the client's). Needs
 * CAP_NET_ADMIN over the calling thread's netns. The kernel then lets a
 * socket use a foreign source address; the mark is what the netns's policy
 * routing (src/sys/netlink.ts addLocalDelivery) uses to bring the replies
 * back to it.
 */
export function connectStartFrom(host: string, port: number, type: number, from: Uint8Array, mark: number): number {
  const { buf, family } = sockaddrOf(host, port);
  if (sockaddrFamily(from) !== family) throw new SysError("bind", ERRNO.EAFNOSUPPORT, "client and sandbox address families differ");
  const fd = check("socket", libc.symbols.socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  try {
    const one = new Int32Array([1]);
    const markValue = new Uint32Array([mark]);
    // A client port still in TIME_WAIT here from an earlier connection of the same client must not fail the bind.
    check("setsockopt", libc.symbols.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, ptr(one), 4), "SO_REUSEADDR");
    if (family === AF_INET6) check("setsockopt", libc.symbols.setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, ptr(one), 4), "IPV6_TRANSPARENT");
    else check("setsockopt", libc.symbols.setsockopt(fd, SOL_IP, IP_TRANSPARENT, ptr(one), 4), "IP_TRANSPARENT");
    check("setsockopt", libc.symbols.setsockopt(fd, SOL_SOCKET, SO_MARK, ptr(markValue), 4), "SO_MARK");
    check("bind", libc.symbols.bind(fd, ptr(from), from.length), "the client's address");
    if (libc.symbols.connect(fd, ptr(buf), buf.length) === -1) {
      const err = errno();
      if (err !== EINPROGRESS) throw new SysError("connect", err, `${host}:${port}`);
    }
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}
