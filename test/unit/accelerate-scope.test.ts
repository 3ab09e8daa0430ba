// The --accelerate policy (src/accelerate/scope.ts): a host socket only where
// the sandbox could reach anyway, outside its own namespace's networks.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { listeningInodes } from "../../src/accelerate/held.ts";
import { ExpectedTokens } from "../../src/accelerate/tokens.ts";
import { decide, decideBind, insideSubnets, LEARNABLE, type Scope, type ScopeEgress } from "../../src/accelerate/scope.ts";
import { LearnedAddresses } from "../../src/egress/learned.ts";
import { compilePolicy, type EgressFlags, parseEgressFlags, type PolicyContext, verdict } from "../../src/egress/policy.ts";

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

describe("decide with an egress policy (issue 18: the ruleset never sees a host socket)", () => {
  const flags = (f: Partial<EgressFlags>): EgressFlags => ({ allowHost: [], allowCidr: [], denyCidr: [], logOnly: false, ...f });
  const context: PolicyContext = { hostAddresses: ["10.0.2.2", "192.0.2.1"], sandboxAddresses: ["10.0.2.100"] };
  const egressOf = (f: Partial<EgressFlags>, learned?: ScopeEgress["learned"]): ScopeEgress => ({
    policy: compilePolicy(parseEgressFlags(flags(f))!, context),
    ...(learned ? { learned } : {}),
  });
  const judge = (egress: ScopeEgress, ip: string, port = 443, scope: Scope = slirp) =>
    decide(scope, { ip, port }, scope.netnsInode, insideSubnets(scope), egress);

  test("a denied CIDR is refused with its rule; other destinations get host sockets", () => {
    const e = egressOf({ denyCidr: ["198.51.100.0/24"] });
    expect(judge(e, "198.51.100.7")).toEqual({
      refuse: { destination: "198.51.100.7", port: 443, protocol: "tcp", rule: "--deny-cidr 198.51.100.0/24", reason: "deny rule" },
    });
    expect(judge(e, "203.0.113.9")).toEqual({ host: { ip: "203.0.113.9", port: 443 } });
  });

  test("an allowed CIDR gets a host socket; anything else is refused by default", () => {
    const e = egressOf({ allowCidr: ["198.51.100.0/24", "2001:db8::/32"] });
    expect(judge(e, "198.51.100.7")).toEqual({ host: { ip: "198.51.100.7", port: 443 } });
    expect(judge(e, "2001:db8::5", 80)).toEqual({ host: { ip: "2001:db8::5", port: 80 } });
    expect(judge(e, "203.0.113.9", 80)).toEqual({ refuse: { destination: "203.0.113.9", port: 80, protocol: "tcp", rule: null, reason: "default deny" } });
    expect(judge(e, "2001:db9::1")).toHaveProperty("refuse.reason", "default deny");
  });

  test("a deny rule wins over an allow rule", () => {
    const e = egressOf({ allowCidr: ["0.0.0.0/0"], denyCidr: ["private"] });
    expect(judge(e, "203.0.113.9")).toHaveProperty("host");
    // A bridge sandbox keeps the private ranges inside (its ruleset judges them); slirp4netns's hands 192.168/16 to the host.
    expect(judge(e, "192.168.1.5")).toHaveProperty("refuse.rule", "--deny-cidr private");
  });

  test("a host rule reaches the addresses learned for it, until they expire; what it could still reach unlearned is the ruleset's to judge", () => {
    const learned = new LearnedAddresses();
    learned.addUntil("203.0.113.5", 0, 10_000);
    const at = (now: number) => egressOf({ allowHost: ["pypi.org:443"], denyCidr: ["203.0.113.128/25"] }, (ip) => learned.rulesFor(ip, now));
    expect(judge(at(5_000), "203.0.113.5")).toEqual({ host: { ip: "203.0.113.5", port: 443 } });
    // No rule reaches port 80, learned or not: refused here.
    expect(judge(at(5_000), "203.0.113.5", 80)).toHaveProperty("refuse.reason", "default deny");
    // The rule's port, not learned (or expired): the address may be in the ruleset's set already (the resolver
    // writes it there before its answer; the supervisor hears of it later), so the connect runs inside.
    expect(judge(at(5_000), "203.0.113.6")).toEqual({ continue: LEARNABLE });
    expect(judge(at(10_000), "203.0.113.5")).toEqual({ continue: LEARNABLE });
    // Learned for another rule (index 1, not a rule here) opens nothing.
    learned.addUntil("203.0.113.7", 1, 10_000);
    expect(judge(at(5_000), "203.0.113.7")).toEqual({ continue: LEARNABLE });
    // A deny rule wins over whatever is learned: refused here.
    expect(judge(at(5_000), "203.0.113.200")).toHaveProperty("refuse.reason", "deny rule");
    // DNS elsewhere: a host rule without port 53 never allows it.
    expect(judge(egressOf({ allowHost: ["pypi.org"] }), "198.51.100.53", 53)).toHaveProperty("refuse.reason", "dns to another resolver");
    expect(judge(egressOf({ allowHost: ["pypi.org"] }), "198.51.100.53", 80)).toEqual({ continue: LEARNABLE });
  });

  test("LearnedAddresses.addUntil keeps the later expiry of two reports", () => {
    const learned = new LearnedAddresses();
    learned.addUntil("2001:DB8::0:1", 2, 20_000);
    learned.addUntil("2001:db8::1", 2, 10_000);
    const ip = { family: 6 as const, value: 0x20010db8000000000000000000000001n };
    expect(learned.rulesFor(ip, 15_000)).toEqual([2]);
    expect(learned.rulesFor(ip, 20_000)).toEqual([]);
  });

  test("port and protocol rules: the port must match, and a UDP-only rule never lets a TCP connect out", () => {
    const e = egressOf({ allowCidr: ["198.51.100.0/24:443,8000-8080", "203.0.113.0/24/udp"] });
    expect(judge(e, "198.51.100.7", 443)).toHaveProperty("host");
    expect(judge(e, "198.51.100.7", 8080)).toHaveProperty("host");
    expect(judge(e, "198.51.100.7", 80)).toHaveProperty("refuse.reason", "default deny");
    expect(judge(e, "203.0.113.9", 443)).toHaveProperty("refuse.reason", "default deny");
    const tcp = egressOf({ allowCidr: ["0.0.0.0/0"], denyCidr: ["198.51.100.0/24:22/tcp"] });
    expect(judge(tcp, "198.51.100.7", 22)).toHaveProperty("refuse.rule", "--deny-cidr 198.51.100.0/24:22/tcp");
    expect(judge(tcp, "198.51.100.7", 23)).toHaveProperty("host");
  });

  test("an IPv4-mapped IPv6 destination is judged as its IPv4 address", () => {
    const e = egressOf({ allowCidr: ["0.0.0.0/0", "::/0"], denyCidr: ["192.168.0.0/16"] });
    expect(judge(e, "::ffff:192.168.1.5")).toEqual({
      refuse: { destination: "192.168.1.5", port: 443, protocol: "tcp", rule: "--deny-cidr 192.168.0.0/16", reason: "deny rule" },
    });
    expect(judge(egressOf({ allowCidr: ["198.51.100.0/24"] }), "::ffff:198.51.100.7")).toHaveProperty("host");
    // Mapped loopback and the sandbox's own range stay inside, policy or not.
    expect(judge(e, "::ffff:127.0.0.1")).toEqual({ continue: "local address" });
    expect(judge(e, "::ffff:10.0.2.3")).toEqual({ continue: "inside the sandbox's networks" });
  });

  test("DNS: port 53 outside the loopback is refused once an allow rule exists, unless a rule names port 53", () => {
    const e = egressOf({ allowCidr: ["0.0.0.0/0"] });
    expect(judge(e, "198.51.100.53", 53)).toEqual({
      refuse: { destination: "198.51.100.53", port: 53, protocol: "tcp", rule: null, reason: "dns to another resolver" },
    });
    expect(judge(egressOf({ allowCidr: ["198.51.100.53:53/tcp"] }), "198.51.100.53", 53)).toHaveProperty("host");
    // With deny rules only, DNS is as free as everything not denied (docs/egress.md "Semantics" 4 and 6).
    expect(judge(egressOf({ denyCidr: ["203.0.113.0/24"] }), "198.51.100.53", 53)).toHaveProperty("host");
    // burrow's resolver on the sandbox's loopback is not egress.
    expect(judge(e, "127.0.0.53", 53)).toEqual({ continue: "local address" });
  });

  test("--egress-log-only: the host socket, and the refusal it would have been", () => {
    const e = egressOf({ allowCidr: ["198.51.100.0/24"], logOnly: true });
    expect(judge(e, "203.0.113.9", 80)).toEqual({
      host: { ip: "203.0.113.9", port: 80 },
      wouldRefuse: { destination: "203.0.113.9", port: 80, protocol: "tcp", rule: null, reason: "default deny" },
    });
    expect(judge(e, "198.51.100.7")).toEqual({ host: { ip: "198.51.100.7", port: 443 } });
  });

  test("the host alias is judged as the sandbox names it (10.0.2.2), before it becomes the host's loopback", () => {
    const alias: Scope = { ...slirp, allowHostLoopback: true };
    expect(judge(egressOf({ allowCidr: ["198.51.100.0/24"] }), "10.0.2.2", 8080, alias)).toHaveProperty("refuse.destination", "10.0.2.2");
    expect(judge(egressOf({ allowCidr: ["host:8080"] }), "10.0.2.2", 8080, alias)).toEqual({ host: { ip: "127.0.0.1", port: 8080 } });
    // Without allow_host_loopback it stays inside, where the ruleset judges it.
    expect(judge(egressOf({ allowCidr: ["host:8080"] }), "10.0.2.2", 8080)).toEqual({ continue: "host loopback not allowed" });
  });

  test("what stays inside is the ruleset's: another namespace, loopback, the sandbox's networks", () => {
    const e = egressOf({ allowCidr: ["198.51.100.0/24"] });
    expect(decide(slirp, { ip: "203.0.113.9", port: 80 }, 1, insideSubnets(slirp), e)).toEqual({ continue: "another network namespace" });
    expect(judge(e, "10.0.2.3", 80)).toEqual({ continue: "inside the sandbox's networks" });
    expect(judge(e, "10.88.0.5", 80, bridge)).toEqual({ continue: "inside the sandbox's networks" });
  });

  test("property: a host socket only where verdict() allows (or log-only says it would not); a refusal only where it refuses", () => {
    const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join("."));
    const cidr = fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`);
    const withPort = fc.tuple(cidr, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })).map(([c, p]) => (p ? `${c}:${p}` : c));
    fc.assert(
      fc.property(
        fc.array(withPort, { maxLength: 4 }),
        fc.array(withPort, { maxLength: 3 }),
        fc.boolean(),
        v4,
        fc.constantFrom(22, 53, 80, 443, 8080),
        fc.array(fc.constantFrom("a.test", "b.test:443", "c.test:53", "d.test:80,8080"), { maxLength: 2 }),
        (allowCidr, denyCidr, logOnly, ip, port, allowHost) => {
          if (allowCidr.length + denyCidr.length + allowHost.length === 0) return true;
          const e = egressOf({ allowCidr, denyCidr, logOnly, allowHost });
          const out = judge(e, ip, port);
          const dest = { ip, port, protocol: "tcp" } as const;
          const v = verdict(e.policy, dest);
          // Left to the ruleset only where learning the address for a host rule would allow it.
          if ("continue" in out)
            return out.continue !== LEARNABLE || (!v.allow && verdict(e.policy, dest, () => e.policy.hosts.map((h) => h.allowIndex)).allow);
          if ("refuse" in out) return !v.allow && !logOnly;
          return v.allow ? !out.wouldRefuse : logOnly && !!out.wouldRefuse;
        },
      ),
      { numRuns: 2000 },
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

describe("ExpectedTokens (the Worker's announced enter steps)", () => {
  test("a token serves one listener; one whose listener never came is forgotten after its age, and with its sandbox", () => {
    const tokens = new ExpectedTokens<{ id: string }>(600_000);
    tokens.expect("a", { id: "s1" }, 0);
    tokens.expect("b", { id: "s1" }, 0);
    tokens.expect("c", { id: "s2" }, 500_000);
    expect(tokens.take("a", 1_000)).toEqual({ id: "s1" });
    expect(tokens.take("a", 1_000)).toBeUndefined();
    // b's enter step failed before its handoff: it does not outlive its age.
    tokens.expire(599_999);
    expect(tokens.size).toBe(2);
    tokens.expire(600_000);
    expect(tokens.size).toBe(1);
    // Taken late (the Worker had not swept yet): expired all the same.
    tokens.expect("d", { id: "s2" }, 0);
    expect(tokens.take("d", 600_000)).toBeUndefined();
    tokens.forget("s2");
    expect(tokens.size).toBe(0);
  });
});
