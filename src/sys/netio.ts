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
import { AF_INET, AF_INET6, ipv6Bytes, SOCK_CLOEXEC } from "./net.ts";
import { close } from "./ns.ts";

export const SOCK_NONBLOCK = 0o4000;
const EINPROGRESS = 115;

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
