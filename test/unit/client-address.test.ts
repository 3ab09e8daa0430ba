// Which clients go into a sandbox with their own address
// (src/ports/client-address.ts) and the sockaddr helpers it uses.
import { describe, expect, test } from "bun:test";
import { clientSource } from "../../src/ports/client-address.ts";
import { AF_INET, AF_INET6 } from "../../src/sys/net.ts";
import { isLoopbackSockaddr, sockaddrFamily, sockaddrOf, unmappedSockaddr } from "../../src/sys/netio.ts";

const sa = (host: string, port = 40000) => sockaddrOf(host, port).buf;

describe("unmappedSockaddr", () => {
  test("an IPv4 client of a dual-stack listener becomes a sockaddr_in with the same address and port", () => {
    expect([...unmappedSockaddr(sa("::ffff:10.77.0.2", 40001))]).toEqual([...sa("10.77.0.2", 40001)]);
  });
  test("plain IPv4 and real IPv6 stay as they are", () => {
    expect(unmappedSockaddr(sa("10.77.0.2"))).toEqual(sa("10.77.0.2"));
    expect(unmappedSockaddr(sa("2001:db8::2"))).toEqual(sa("2001:db8::2"));
  });
});

describe("isLoopbackSockaddr", () => {
  test.each(["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"])("%s is loopback", (ip) => {
    expect(isLoopbackSockaddr(sa(ip))).toBe(true);
  });
  test.each(["10.77.0.2", "::ffff:10.0.0.1", "2001:db8::1", "::2", "128.0.0.1"])("%s is not", (ip) => {
    expect(isLoopbackSockaddr(sa(ip))).toBe(false);
  });
});

describe("clientSource", () => {
  test("a non-loopback client of the target's family goes in as itself", () => {
    const from = clientSource(sa("::ffff:10.77.0.2"), AF_INET);
    expect(from && sockaddrFamily(from)).toBe(AF_INET);
    expect(clientSource(sa("2001:db8::2"), AF_INET6)).toEqual(sa("2001:db8::2"));
  });
  test("loopback clients, other families and unknown peers keep the forwarder's address", () => {
    expect(clientSource(sa("127.0.0.1"), AF_INET)).toBeNull();
    expect(clientSource(sa("::1"), AF_INET6)).toBeNull();
    expect(clientSource(sa("2001:db8::2"), AF_INET)).toBeNull();
    expect(clientSource(sa("10.77.0.2"), AF_INET6)).toBeNull();
    expect(clientSource(new Uint8Array(0), AF_INET)).toBeNull();
  });
});
