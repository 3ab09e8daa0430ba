// The forwarder's checks and messages, without sockets or namespaces:
// invalid specs are refused before anything is bound.
import { describe, expect, test } from "bun:test";
import { forwarderListenAddress } from "../../src/ports/host-port.ts";
import { isIPv6Sockaddr, sockaddrOf } from "../../src/sys/netio.ts";
import { BurrowError } from "../../src/errors.ts";
import { bindError, createForwarder, listenAddress, type ForwardSpec } from "../../src/ports/forwarder.ts";

const spec: ForwardSpec = { hostIp: "", hostPort: 8080, protocol: "tcp", netnsPath: "/run/netns/x", targetIp: "10.0.2.100", targetPort: 80 };

describe("bindError", () => {
  test("a port in use names the port, protocol and address", () => {
    const e = bindError({ code: "EADDRINUSE" }, spec);
    expect(e).toBeInstanceOf(BurrowError);
    expect(e.message).toBe("host port 8080/tcp is already in use on 0.0.0.0");
    expect(e.kind).toBe("port-in-use");
  });

  test("a privileged port names the sysctl that allows it", () => {
    const e = bindError({ code: "EACCES" }, { hostIp: "127.0.0.1", hostPort: 80, protocol: "udp" });
    expect(e.message).toContain("80/udp on 127.0.0.1");
    expect(e.message).toContain("sysctl net.ipv4.ip_unprivileged_port_start=80");
    expect(e.kind).toBe("port-privileged");
  });

  test("an address the host does not have is named", () => {
    expect(bindError({ code: "EADDRNOTAVAIL" }, { ...spec, hostIp: "192.0.2.77" }).message).toBe(
      "cannot bind host port 8080/tcp: 192.0.2.77 is not an address of this host",
    );
  });
});

test('listenAddress: "" means every IPv4 address', () => {
  expect(listenAddress("")).toBe("0.0.0.0");
  expect(listenAddress("::1")).toBe("::1");
});

describe("add() refuses bad specs before binding anything", () => {
  const fwd = createForwarder();
  const cases: Array<[string, Partial<ForwardSpec>, RegExp]> = [
    ["loopback target", { targetIp: "127.0.0.1" }, /never to its loopback/],
    ["IPv6 loopback target", { targetIp: "::1" }, /never to its loopback/],
    ["target not an IP", { targetIp: "sandbox.local" }, /not an IP address/],
    ["host IP not an IP", { hostIp: "localhost" }, /invalid host IP "localhost"/],
    ["host port out of range", { hostPort: 70000 }, /invalid host port 70000/],
    ["container port 0", { targetPort: 0 }, /invalid container port 0/],
    ["protocol", { protocol: "sctp" as "tcp" }, /invalid port protocol "sctp"/],
  ];
  for (const [name, change, message] of cases) {
    test(name, async () => {
      const err = await fwd.add({ ...spec, ...change }).catch((e) => e);
      expect(err).toBeInstanceOf(BurrowError);
      expect(err.message).toMatch(message);
    });
  }
  test("nothing was started", () => {
    expect(fwd.stats()).toEqual({ ports: 0, tcpConnections: 0, udpFlows: 0, connectorRunning: false, collections: 0, tcpClientAddress: 0 });
    fwd.close();
  });
});

describe("IPv6 (issue 15 item 4)", () => {
  test("plain -p listens on :: where the host has IPv6, else on 0.0.0.0; given addresses stay", () => {
    expect(forwarderListenAddress("", true)).toBe("::");
    expect(forwarderListenAddress("", false)).toBe("0.0.0.0");
    expect(forwarderListenAddress("127.0.0.1", true)).toBe("127.0.0.1");
    expect(forwarderListenAddress("::1", false)).toBe("::1");
  });
  test("an IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is not an IPv6 one", () => {
    expect(isIPv6Sockaddr(sockaddrOf("::1", 80).buf)).toBe(true);
    expect(isIPv6Sockaddr(sockaddrOf("fd00::5", 80).buf)).toBe(true);
    expect(isIPv6Sockaddr(sockaddrOf("::ffff:127.0.0.1", 80).buf)).toBe(false);
    expect(isIPv6Sockaddr(sockaddrOf("127.0.0.1", 80).buf)).toBe(false);
    expect(isIPv6Sockaddr(new Uint8Array(0))).toBe(false);
  });
});
