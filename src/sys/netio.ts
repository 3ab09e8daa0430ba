// Non-blocking socket setup for the port forwarder's connector Worker.
//
// A blocking connect() would wait for the handshake. The connector is ONE
// thread shared by every sandbox, so a sandbox whose service drops SYNs
// (full accept queue, firewall) would stall every other sandbox's forwards
// for up to two minutes. Here the socket is created non-blocking and connect()
// only starts the handshake; the connector's epoll loop sees it complete
// (writable) or fail (a refusal surfaces as an error from the first splice).
import { ptr } from "bun:ffi";
import { isIPv4, isIPv6 } from "node:net";
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
