// The daemon's egress wiring's own decisions (src/daemon/egress.ts): the
// resolver's upstreams, the `host` preset's addresses from a network's
// setup, resolv.conf's servers and the shape of refusal events. The rest
// (sockets, ruleset, recovery) is in test/integration/egress-wiring.test.ts.
import { describe, expect, test } from "bun:test";
import { egressContext, egressUpstreams, refusalEventAttributes, resolvConfServers } from "../../src/daemon/egress.ts";
import type { Sandbox } from "../../src/state/sandboxes.ts";

const sandbox = (dns: string[], runtime: Partial<Sandbox["runtime"]> = {}) =>
  ({ spec: { dns }, runtime: { pins: null, ino: null, network: "slirp4netns", ...runtime } }) as unknown as Pick<Sandbox, "spec" | "runtime">;

describe("upstreams", () => {
  test("--dns servers win; else the host's resolv.conf nameservers as they are, the systemd-resolved stub included", () => {
    expect(egressUpstreams(["192.0.2.53", "2001:db8::53"], "nameserver 10.0.0.1\n")).toEqual(["192.0.2.53", "2001:db8::53"]);
    expect(egressUpstreams([], "search example\nnameserver 127.0.0.53\noptions edns0\n")).toEqual(["127.0.0.53"]);
    expect(egressUpstreams([], "nameserver 10.0.0.1\nnameserver 10.0.0.1\nnameserver bogus\n")).toEqual(["10.0.0.1"]);
    expect(egressUpstreams([], "")).toEqual([]);
  });
});

describe("the host preset and the sandbox's own addresses", () => {
  test("slirp4netns: the interfaces, the gateway (its host alias), the sandbox's address", () => {
    const e = egressContext(sandbox(["192.0.2.53"], { address: "10.0.2.100" }), { gateway: "10.0.2.2", address: "10.0.2.100" }, () => ["192.168.1.5"]);
    expect(e.hostAddresses.sort()).toEqual(["10.0.2.2", "192.168.1.5"]);
    expect(e.sandboxAddresses).toEqual(["10.0.2.100"]);
    expect(e.upstreams).toEqual(["192.0.2.53"]);
    expect(e.missing).toBeUndefined();
  });

  test("bridges: every network's gateways; pasta's mapped address; addresses copied into pasta's namespace are left out", () => {
    const bridge = egressContext(
      sandbox(["192.0.2.53"], { address: "10.88.0.5", address6: "fd00::5" }),
      { gateway: "10.88.0.1", networks: { a: { Gateway: "10.88.0.1", IPv6Gateway: "fd00::1" }, b: { Gateway: "10.89.0.1", IPv6Gateway: "" } } },
      () => [],
    );
    expect(bridge.hostAddresses.sort()).toEqual(["10.88.0.1", "10.89.0.1", "fd00::1"]);
    expect(bridge.sandboxAddresses).toEqual(["10.88.0.5", "fd00::5"]);
    const pasta = egressContext(sandbox(["192.0.2.53"]), { hostContainersInternal: "169.254.1.2", hostAddressesInside: ["192.168.1.5"] }, () => [
      "192.168.1.5",
      "203.0.113.9",
    ]);
    expect(pasta.hostAddresses.sort()).toEqual(["169.254.1.2", "203.0.113.9"]);
  });

  test("what could not be known is said: no address for the host, no upstream", () => {
    const e = egressContext(sandbox([]), {}, () => ["192.168.1.5"]);
    expect(e.missing?.some((m) => m.includes("no address for the host"))).toBe(true);
    // No network setup at all (--network none): nothing is missing there.
    expect(egressContext(sandbox(["192.0.2.53"]), undefined, () => []).missing).toBeUndefined();
  });
});

test("resolv.conf lists burrow's resolver alone with a policy, the --dns servers without", () => {
  expect(resolvConfServers({ dns: ["192.0.2.53"], egress: { allow: [], deny: [{ kind: "preset", preset: "private" }], logOnly: false } })).toEqual([
    "127.0.0.53",
  ]);
  expect(resolvConfServers({ dns: ["192.0.2.53"] })).toEqual(["192.0.2.53"]);
});

describe("refusal events", () => {
  const base = { destination: "192.0.2.7", port: 443, protocol: "tcp", rule: "--deny-cidr 192.0.2.0/24", reason: "deny rule", count: 1 };
  test("a refused connection names destination, port, protocol, rule and reason", () => {
    expect(refusalEventAttributes(base)).toEqual({
      destination: "192.0.2.7",
      port: 443,
      protocol: "tcp",
      rule: "--deny-cidr 192.0.2.0/24",
      reason: "deny rule",
      count: 1,
    });
  });
  test("the default refusal has an empty rule and no port; a refused name carries the name", () => {
    expect(refusalEventAttributes({ ...base, rule: null, reason: "default deny", port: undefined, protocol: "icmp" })).toEqual({
      destination: "192.0.2.7",
      protocol: "icmp",
      rule: "",
      reason: "default deny",
      count: 1,
    });
    const dns = refusalEventAttributes({ destination: "", protocol: "udp", rule: null, reason: "name not allowed", name: "evil.test", count: 3 });
    expect(dns.name).toBe("evil.test");
    expect(dns.count).toBe(3);
  });
});
