// The --accelerate policy (src/accelerate/scope.ts): a host socket only where
// the sandbox could reach anyway, outside its own namespace's networks.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { listeningInodes } from "../../src/accelerate/held.ts";
import { decide, decideBind, type Scope } from "../../src/accelerate/scope.ts";

const slirp: Scope = { netnsInode: 4026532000, inside: ["10.0.2.0/24", "fd00::/64", "10.0.2.100"], hostAlias: ["10.0.2.2"], allowHostLoopback: false };
const bridge: Scope = { netnsInode: 4026532001, inside: ["10.88.0.0/16", "10.89.3.0/24", "fd10:1::/64"], allowHostLoopback: false };

describe("decide", () => {
  test("outside destinations go through the host; the sandbox's own ranges, loopback and link-local stay inside", () => {
    expect(decide(slirp, { ip: "198.51.100.7", port: 443 }, slirp.netnsInode)).toEqual({ host: { ip: "198.51.100.7", port: 443 } });
    expect(decide(slirp, { ip: "2001:db8::5", port: 80 }, slirp.netnsInode)).toEqual({ host: { ip: "2001:db8::5", port: 80 } });
    for (const ip of [
      "10.0.2.3",
      "10.0.2.100",
      "fd00::2",
      "127.0.0.1",
      "127.1.2.3",
      "::1",
      "0.0.0.0",
      "::",
      "169.254.169.254",
      "169.254.1.1",
      "fe80::1",
      "224.0.0.1",
    ]) {
      expect("continue" in decide(slirp, { ip, port: 80 }, slirp.netnsInode), ip).toBe(true);
    }
    for (const ip of ["10.88.0.5", "10.89.3.1", "fd10:1::9"]) expect("continue" in decide(bridge, { ip, port: 80 }, bridge.netnsInode), ip).toBe(true);
    // The slirp4netns range of another sandbox is just an address to a bridge sandbox.
    expect(decide(bridge, { ip: "10.0.2.2", port: 80 }, bridge.netnsInode)).toEqual({ host: { ip: "10.0.2.2", port: 80 } });
  });

  test("the host alias reaches the host's loopback only with allow_host_loopback", () => {
    expect(decide(slirp, { ip: "10.0.2.2", port: 8080 }, slirp.netnsInode)).toEqual({ continue: "host loopback not allowed" });
    expect(decide({ ...slirp, allowHostLoopback: true }, { ip: "10.0.2.2", port: 8080 }, slirp.netnsInode)).toEqual({ host: { ip: "127.0.0.1", port: 8080 } });
  });

  test("a task in any other network namespace (its own unshare -n) is never accelerated", () => {
    expect(decide(slirp, { ip: "198.51.100.7", port: 443 }, 4026539999)).toEqual({ continue: "another network namespace" });
    expect(decide(slirp, { ip: "198.51.100.7", port: 443 }, null)).toEqual({ continue: "another network namespace" });
  });

  test("property: never a host socket to loopback, unless it is the alias with allow_host_loopback", () => {
    const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join("."));
    fc.assert(
      fc.property(v4, fc.boolean(), fc.integer({ min: 1, max: 65535 }), (ip, allow, port) => {
        const v = decide({ ...slirp, allowHostLoopback: allow }, { ip, port }, slirp.netnsInode);
        if (!("host" in v)) return true;
        const toLoopback = v.host.ip.startsWith("127.");
        return !toLoopback || (allow && ip === "10.0.2.2");
      }),
      { numRuns: 5000 },
    );
  });
});

describe("decideBind (inbound)", () => {
  const scope: Scope = { netnsInode: 7, inside: ["10.0.2.0/24"], allowHostLoopback: false, own: ["10.0.2.100", "fd00::100"] };
  test("the wildcard or the sandbox's own address of the socket's family, on a real port, in the sandbox's namespace", () => {
    expect(decideBind(scope, { ip: "0.0.0.0", port: 80 }, 4, 7)).toEqual({ port: 80, family: 4 });
    expect(decideBind(scope, { ip: "::", port: 80 }, 6, 7)).toEqual({ port: 80, family: 6 });
    expect(decideBind(scope, { ip: "10.0.2.100", port: 80 }, 4, 7)).toEqual({ port: 80, family: 4 });
    expect(decideBind(scope, { ip: "fd00::100", port: 80 }, 6, 7)).toEqual({ port: 80, family: 6 });
  });
  test("loopback, another address, port 0, another namespace, a family mix: the bind runs inside", () => {
    for (const [ip, port, family, ns] of [
      ["127.0.0.1", 80, 4, 7],
      ["::1", 80, 6, 7],
      ["10.0.2.15", 80, 4, 7],
      ["0.0.0.0", 0, 4, 7],
      ["0.0.0.0", 80, 4, 8],
      ["0.0.0.0", 80, 6, 7],
    ] as const)
      expect(decideBind(scope, { ip, port }, family, ns)).toHaveProperty("continue");
  });
});

describe("listeningInodes", () => {
  test("only listening sockets (st 0A) on the port, from tcp and tcp6", () => {
    const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1001        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 4444 1 0000000000000000 100 0 0 10 0`;
    const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 4545 1 0000000000000000 100 0 0 10 0`;
    expect([...listeningInodes([tcp, tcp6], 8080)]).toEqual([4242, 4545]);
  });
});
