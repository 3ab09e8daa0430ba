// The --accelerate policy (src/accelerate/scope.ts): a host socket only where
// the sandbox could reach anyway, outside its own namespace's networks.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { decide, type Scope } from "../../src/accelerate/scope.ts";

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
