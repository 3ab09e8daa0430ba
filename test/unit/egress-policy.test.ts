// Egress rules (src/egress/policy.ts, issue 18): the flags' syntax, the
// schema the spec keeps, and the one verdict (deny wins; no allow rule, no
// restriction; DNS to burrow's resolver only; rebinding opens nothing).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import * as v from "valibot";
import { BurrowError } from "../../src/errors.ts";
import { LearnedAddresses, learnedSeconds, MAX_LEARNED_SECONDS, MIN_LEARNED_SECONDS } from "../../src/egress/learned.ts";
import {
  answerVerdict,
  compilePolicy,
  type EgressFlags,
  EgressPolicy,
  inspectEgress,
  parseAllowHost,
  parseCidrFlag,
  parseEgressFlags,
  parsePorts,
  ruleText,
  verdict as verdictOf,
} from "../../src/egress/policy.ts";
import { formatIp, parseIp } from "../../src/net/cni/ip.ts";
import { quote } from "../../src/quote.ts";

const none: EgressFlags = { allowHost: [], allowCidr: [], denyCidr: [], logOnly: false };
const policyOf = (flags: Partial<typeof none>, hostAddresses: string[] = []) => compilePolicy(parseEgressFlags({ ...none, ...flags })!, { hostAddresses });
const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BurrowError);
    expect((e as BurrowError).kind).toBe("bad-input");
    expect((e as BurrowError).message).not.toContain("\n");
    return (e as BurrowError).message;
  }
  throw new Error("not refused");
};

describe("flags", () => {
  test("no flag is no policy: today's behaviour", () => {
    expect(parseEgressFlags(none)).toBeNull();
  });

  test("--allow-host: names, *. patterns, ports and protocol", () => {
    expect(parseAllowHost("PyPI.org.")).toEqual({ kind: "host", pattern: "pypi.org" });
    expect(parseAllowHost("*.pythonhosted.org")).toEqual({ kind: "host", pattern: "*.pythonhosted.org" });
    expect(parseAllowHost("registry.npmjs.org:443/tcp")).toEqual({
      kind: "host",
      pattern: "registry.npmjs.org",
      ports: [{ from: 443, to: 443 }],
      protocol: "tcp",
    });
    expect(parseAllowHost("_imaps._tcp.example.com")).toEqual({ kind: "host", pattern: "_imaps._tcp.example.com" });
  });

  test("--allow-host refuses what is not a name, naming the value and what is accepted", () => {
    for (const [bad, why] of [
      ["*", "every name"],
      ["*.com", "two labels"],
      ["a.*.example.com", "first label"],
      ["foo*.example.com", "first label"],
      ["10.1.2.3", "--allow-cidr"],
      ["-bad.example.com", "label"],
      ["a..b", "empty label"],
      ["pypi.org:0", "outside 1-65535"],
      ["pypi.org:443-80", "backwards"],
      ["pypi.org:https", "not a port"],
      [`${"a".repeat(64)}.com`, "label"],
    ] as const) {
      const message = refusal(() => parseAllowHost(bad));
      expect(message).toStartWith(`invalid --allow-host ${quote(bad)}`);
      expect(message).toContain(why);
      expect(message).toContain("accepted:");
    }
  });

  test("--allow-cidr / --deny-cidr: CIDRs, bare and bracketed addresses, presets, ports and protocol", () => {
    const p = (s: string) => parseCidrFlag(s, "--allow-cidr");
    expect(p("10.1.2.3/16")).toEqual({ kind: "cidr", cidr: "10.1.0.0/16" });
    expect(p("10.1.0.0/16:443")).toEqual({ kind: "cidr", cidr: "10.1.0.0/16", ports: [{ from: 443, to: 443 }] });
    expect(p("10.1.0.0/16:443/tcp")).toEqual({ kind: "cidr", cidr: "10.1.0.0/16", ports: [{ from: 443, to: 443 }], protocol: "tcp" });
    expect(p("10.1.0.0/16/udp")).toEqual({ kind: "cidr", cidr: "10.1.0.0/16", protocol: "udp" });
    expect(p("192.0.2.7")).toEqual({ kind: "cidr", cidr: "192.0.2.7/32" });
    expect(p("192.0.2.7:80,8000-8080")).toEqual({
      kind: "cidr",
      cidr: "192.0.2.7/32",
      ports: [
        { from: 80, to: 80 },
        { from: 8000, to: 8080 },
      ],
    });
    expect(p("2001:DB8::1")).toEqual({ kind: "cidr", cidr: "2001:db8::1/128" });
    expect(p("abcd::1")).toEqual({ kind: "cidr", cidr: "abcd::1/128" });
    expect(p("2001:db8::/32:443")).toEqual({ kind: "cidr", cidr: "2001:db8::/32", ports: [{ from: 443, to: 443 }] });
    expect(p("[2001:db8::1]:53/udp")).toEqual({ kind: "cidr", cidr: "2001:db8::1/128", ports: [{ from: 53, to: 53 }], protocol: "udp" });
    expect(p("[2001:db8::/32]")).toEqual({ kind: "cidr", cidr: "2001:db8::/32" });
    expect(p("private")).toEqual({ kind: "preset", preset: "private" });
    expect(p("HOST:8080/tcp")).toEqual({ kind: "preset", preset: "host", ports: [{ from: 8080, to: 8080 }], protocol: "tcp" });
  });

  test("--allow-cidr / --deny-cidr refuse in one line", () => {
    for (const bad of ["10.0.0.0/33", "10.0.0/8", "example.com", "[::1", "[::1]x", "10.0.0.0/8:", "10.0.0.0/8:70000", "10.0.0.0/8/icmp", "lan"]) {
      const message = refusal(() => parseCidrFlag(bad, "--deny-cidr"));
      expect(message).toStartWith(`invalid --deny-cidr ${JSON.stringify(bad)}`);
      expect(message).toContain("accepted:");
    }
  });

  test("--egress-log-only alone has nothing to log", () => {
    expect(refusal(() => parseEgressFlags({ ...none, logOnly: true }))).toContain("--egress-log-only needs a rule");
  });

  test("ports: lists and ranges, in 1-65535", () => {
    expect(parsePorts("1,65535,10-20")).toEqual([
      { from: 1, to: 1 },
      { from: 65535, to: 65535 },
      { from: 10, to: 20 },
    ]);
    for (const bad of ["", "0", "65536", "5-4", "a", "1,,2", "-1"]) expect(typeof parsePorts(bad)).toBe("string");
  });

  test("a parsed policy passes its own schema, and a rule's text parses back to the rule", () => {
    const policy = parseEgressFlags({
      allowHost: ["pypi.org:443/tcp", "*.pythonhosted.org"],
      allowCidr: ["[2001:db8::1]:53/udp", "10.1.0.0/16:80,443", "host"],
      denyCidr: ["private", "0.0.0.0/0:25"],
      logOnly: true,
    })!;
    expect(v.parse(EgressPolicy, policy)).toEqual(policy);
    for (const r of policy.allow) {
      const text = ruleText(r, "allow");
      const value = text.slice(text.indexOf(" ") + 1);
      expect(r.kind === "host" ? parseAllowHost(value) : parseCidrFlag(value, "--allow-cidr")).toEqual(r);
    }
    for (const r of policy.deny) expect(parseCidrFlag(ruleText(r, "deny").slice("--deny-cidr ".length), "--deny-cidr")).toEqual(r);
    expect(ruleText(policy.allow[2]!, "allow")).toBe("--allow-cidr [2001:db8::1/128]:53/udp");
  });

  test("the schema refuses what a hand-edited row could hold", () => {
    const bad = [
      { allow: [{ kind: "cidr", cidr: "10.1.2.3/16" }], deny: [], logOnly: false },
      { allow: [{ kind: "host", pattern: "*.com" }], deny: [], logOnly: false },
      { allow: [], deny: [{ kind: "host", pattern: "pypi.org" }], logOnly: false },
      { allow: [{ kind: "preset", preset: "lan" }], deny: [], logOnly: false },
      { allow: [{ kind: "cidr", cidr: "10.0.0.0/8", ports: [{ from: 9, to: 8 }] }], deny: [], logOnly: false },
      { allow: Array.from({ length: 257 }, () => ({ kind: "cidr", cidr: "10.0.0.0/8" })), deny: [], logOnly: false },
    ];
    for (const b of bad) expect(v.safeParse(EgressPolicy, b).success).toBe(false);
  });
});

describe("inspect", () => {
  test("HostConfig.Egress: the mode, the rules as flags, the resolver; null without a policy", () => {
    const policy = parseEgressFlags({ ...none, allowHost: ["*.PythonHosted.org:443"], denyCidr: ["private"], logOnly: true });
    expect(inspectEgress(policy)).toEqual({
      Mode: "log-only",
      Allow: ["--allow-host *.pythonhosted.org:443"],
      Deny: ["--deny-cidr private"],
      Resolver: "127.0.0.53",
    });
    expect(inspectEgress(null)).toBeNull();
  });
});

describe("verdict", () => {
  const policy = policyOf(
    {
      allowHost: ["pypi.org:443/tcp", "*.pythonhosted.org"],
      allowCidr: ["198.51.100.0/24:80,443/tcp", "[2001:db8::53]:53/udp", "host"],
      denyCidr: ["private", "198.51.100.20"],
    },
    ["192.0.2.1"],
  );

  test("deny wins over allow; the decision names its rule", () => {
    const v1 = verdictOf(policy, { ip: "198.51.100.20", port: 443, protocol: "tcp" });
    expect(v1).toEqual({ allow: false, rule: { id: "deny[1]", text: "--deny-cidr 198.51.100.20/32" }, reason: "deny rule" });
    expect(verdictOf(policy, { ip: "169.254.169.254", port: 80, protocol: "tcp" }).rule?.text).toBe("--deny-cidr private");
    expect(verdictOf(policy, { ip: "fd00:ec2::254", port: 80, protocol: "tcp" }).rule?.text).toBe("--deny-cidr private");
  });

  test("allow rules by range, port and protocol; everything else refused, ICMP too", () => {
    expect(verdictOf(policy, { ip: "198.51.100.10", port: 443, protocol: "tcp" })).toMatchObject({ allow: true, rule: { id: "allow[2]" } });
    expect(verdictOf(policy, { ip: "198.51.100.10", port: 22, protocol: "tcp" })).toMatchObject({ allow: false, reason: "default deny" });
    expect(verdictOf(policy, { ip: "198.51.100.10", port: 443, protocol: "udp" }).allow).toBe(false);
    expect(verdictOf(policy, { ip: "198.51.100.10", protocol: "icmp" }).allow).toBe(false);
    expect(verdictOf(policy, { ip: "203.0.113.5", port: 443, protocol: "tcp" }).allow).toBe(false);
    expect(verdictOf(policy, { ip: "192.0.2.1", protocol: "icmp" })).toMatchObject({ allow: true, rule: { text: "--allow-cidr host" } });
    expect(verdictOf(policy, { ip: "2001:db8::99", port: 443, protocol: "tcp" }).allow).toBe(false);
  });

  test("a host rule reaches only what its name resolved to, on its ports", () => {
    const learned = new LearnedAddresses();
    learned.add("203.0.113.5", 0, 300, 0);
    learned.add("2001:db8:1::5", 1, 300, 0);
    const at = (now: number) => (ip: Parameters<LearnedAddresses["rulesFor"]>[0]) => learned.rulesFor(ip, now);
    expect(verdictOf(policy, { ip: "203.0.113.5", port: 443, protocol: "tcp" }, at(1000))).toMatchObject({
      allow: true,
      rule: { text: "--allow-host pypi.org:443/tcp" },
    });
    expect(verdictOf(policy, { ip: "203.0.113.5", port: 80, protocol: "tcp" }, at(1000)).allow).toBe(false);
    expect(verdictOf(policy, { ip: "2001:db8:1::5", port: 8080, protocol: "udp" }, at(1000))).toMatchObject({ allow: true, rule: { id: "allow[1]" } });
    expect(verdictOf(policy, { ip: "203.0.113.5", port: 443, protocol: "tcp" }, at(301_000)).allow).toBe(false);
  });

  test("DNS only to burrow's resolver (loopback), unless a rule names port 53", () => {
    expect(verdictOf(policy, { ip: "127.0.0.53", port: 53, protocol: "udp" })).toMatchObject({ allow: true, reason: "loopback" });
    expect(verdictOf(policy, { ip: "2001:db8::53", port: 53, protocol: "udp" })).toMatchObject({ allow: true, rule: { id: "allow[3]" } });
    const wide = policyOf({ allowCidr: ["0.0.0.0/0", "::/0"] });
    expect(verdictOf(wide, { ip: "198.51.100.53", port: 53, protocol: "udp" })).toMatchObject({ allow: false, reason: "dns to another resolver" });
    expect(verdictOf(wide, { ip: "2001:db8::53", port: 53, protocol: "tcp" }).allow).toBe(false);
    expect(verdictOf(wide, { ip: "198.51.100.53", port: 443, protocol: "tcp" }).allow).toBe(true);
  });

  test("the sandbox's own addresses are not egress, whatever the rules say", () => {
    const own = compilePolicy(parseEgressFlags({ ...none, allowHost: ["a.test"], denyCidr: ["private"] })!, {
      hostAddresses: [],
      sandboxAddresses: ["10.0.2.100", "fd00::100"],
    });
    expect(verdictOf(own, { ip: "10.0.2.100", port: 80, protocol: "tcp" })).toMatchObject({ allow: true, reason: "loopback" });
    expect(verdictOf(own, { ip: "fd00::100", port: 80, protocol: "udp" })).toMatchObject({ allow: true, reason: "loopback" });
    expect(verdictOf(own, { ip: "10.0.2.2", port: 80, protocol: "tcp" })).toMatchObject({ allow: false, reason: "deny rule" });
  });

  test("an IPv4-mapped IPv6 destination is judged as the IPv4 address it reaches", () => {
    const p = policyOf({ allowCidr: ["::/0", "198.51.100.10:443"], denyCidr: ["private"] });
    expect(verdictOf(p, { ip: "::ffff:10.0.0.1", port: 443, protocol: "tcp" })).toMatchObject({ allow: false, rule: { text: "--deny-cidr private" } });
    expect(verdictOf(p, { ip: "::ffff:198.51.100.10", port: 443, protocol: "tcp" })).toMatchObject({ allow: true, rule: { id: "allow[1]" } });
    expect(verdictOf(p, { ip: "::ffff:203.0.113.9", port: 443, protocol: "tcp" }).allow).toBe(false);
    expect(verdictOf(p, { ip: "::ffff:127.0.0.1", port: 80, protocol: "tcp" })).toMatchObject({ allow: true, reason: "loopback" });
  });

  test("--deny-cidr private covers its IPv4 ranges' NAT64 embeddings (64:ff9b::/96), not a public address's", () => {
    const denyOnly = policyOf({ denyCidr: ["private"] });
    for (const ip of ["64:ff9b::10.0.0.1", "64:ff9b::172.31.255.255", "64:ff9b::192.168.1.1", "64:ff9b::100.127.0.1", "64:ff9b::169.254.169.254"])
      expect(verdictOf(denyOnly, { ip, port: 443, protocol: "tcp" }), ip).toMatchObject({ allow: false, rule: { text: "--deny-cidr private" } });
    for (const ip of ["64:ff9b::198.51.100.10", "64:ff9b::172.32.0.1", "64:ff9b::100.128.0.1", "64:ff9b::11.0.0.1"])
      expect(verdictOf(denyOnly, { ip, port: 443, protocol: "tcp" }).allow, ip).toBe(true);
  });

  test("property: under --deny-cidr private an IPv4 address and its NAT64 embedding get the same verdict", () => {
    const denyOnly = policyOf({ denyCidr: ["private"] });
    // Addresses near the private ranges' edges as often as anywhere else.
    const edges = ["10.0.0.0", "11.0.0.0", "172.16.0.0", "172.32.0.0", "192.168.0.0", "192.169.0.0", "100.64.0.0", "100.128.0.0", "169.254.0.0", "169.255.0.0"];
    const nearEdge = fc
      .tuple(fc.constantFrom(...edges), fc.integer({ min: -(1 << 20), max: 1 << 20 }))
      .map(([edge, offset]) => formatIp(4, BigInt(Number(parseIp(edge)!.value) + offset)));
    fc.assert(
      fc.property(fc.oneof(ipv4, nearEdge), (ip) => {
        expect(verdictOf(denyOnly, { ip: `64:ff9b::${ip}`, port: 443, protocol: "tcp" }).allow).toBe(
          verdictOf(denyOnly, { ip, port: 443, protocol: "tcp" }).allow,
        );
      }),
    );
  });

  test("deny rules only: everything else passes, DNS included", () => {
    const denyOnly = policyOf({ denyCidr: ["private"] });
    expect(verdictOf(denyOnly, { ip: "198.51.100.53", port: 53, protocol: "udp" })).toEqual({ allow: true, rule: null, reason: "no allow rules" });
    expect(verdictOf(denyOnly, { ip: "10.0.0.1", port: 53, protocol: "udp" }).allow).toBe(false);
  });

  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join("."));
  const dest = fc.record({ ip: ipv4, port: fc.integer({ min: 1, max: 65535 }), protocol: fc.constantFrom("tcp" as const, "udp" as const) });
  const cidrFlag = fc
    .tuple(ipv4, fc.integer({ min: 0, max: 32 }), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }))
    .map(([ip, p, port]) => `${ip}/${p}${port ? `:${port}` : ""}`);

  test("property: a destination a deny rule covers is never allowed, whatever allows it too", () => {
    fc.assert(
      fc.property(fc.array(cidrFlag, { maxLength: 4 }), cidrFlag, dest, (allows, deny, d) => {
        const p = policyOf({ allowCidr: [...allows, `${d.ip}/32:${d.port}`], denyCidr: [deny] });
        const denied = verdictOf(policyOf({ denyCidr: [deny] }), d).allow === false;
        const loopback = d.ip.startsWith("127.");
        if (denied && !loopback) expect(verdictOf(p, d, () => [0, 1, 2, 3, 4])).toMatchObject({ allow: false, reason: "deny rule" });
      }),
    );
  });

  test("property: with no allow rule, only deny rules refuse", () => {
    fc.assert(
      fc.property(fc.array(cidrFlag, { maxLength: 3 }), dest, (denies, d) => {
        const p = policyOf({ denyCidr: denies.length ? denies : ["192.0.2.0/24"] });
        const r = verdictOf(p, d);
        expect(r.allow || r.reason === "deny rule").toBe(true);
      }),
    );
  });

  test("property: with any allow rule, a destination no rule covers is refused", () => {
    fc.assert(
      fc.property(dest, (d) => {
        const p = policyOf({ allowHost: ["example.com"] });
        expect(verdictOf(p, d).allow).toBe(d.ip.startsWith("127."));
      }),
    );
  });
});

describe("answers (rebinding)", () => {
  const policy = policyOf({ allowHost: ["allowed.test"], allowCidr: ["10.1.0.0/16"], denyCidr: ["198.51.100.20"] });

  test("an answer into a denied, loopback, link-local or private range is not kept", () => {
    expect(answerVerdict(policy, "198.51.100.20")).toMatchObject({ keep: false, reason: "denied range", rule: { id: "deny[0]" } });
    for (const ip of [
      "127.0.0.1",
      "0.0.0.0",
      "169.254.169.254",
      "192.168.1.1",
      "172.16.0.1",
      "100.64.0.1",
      "::1",
      "::",
      "fe80::1",
      "fd00::1",
      "::ffff:10.0.0.1",
      "224.0.0.1",
      "ff02::1",
    ])
      expect(answerVerdict(policy, ip), ip).toMatchObject({ keep: false, reason: "rebinding" });
    expect(answerVerdict(policy, "10.1.2.3")).toMatchObject({ keep: true });
    expect(answerVerdict(policy, "198.51.100.10")).toMatchObject({ keep: true });
    expect(answerVerdict(policy, "not-an-ip")).toMatchObject({ keep: false });
  });

  test("deny rules only: private answers are kept (they are reachable anyway), denied ones are not", () => {
    const denyOnly = policyOf({ denyCidr: ["198.51.100.20"] });
    expect(answerVerdict(denyOnly, "192.168.1.1").keep).toBe(true);
    expect(answerVerdict(denyOnly, "198.51.100.20").keep).toBe(false);
  });

  test("a NAT64 answer (64:ff9b::/96) is judged by the IPv4 address it reaches too; a public one is kept", () => {
    for (const ip of ["64:ff9b::127.0.0.1", "64:ff9b::10.0.0.1", "64:ff9b::192.168.1.1", "64:ff9b::169.254.169.254", "64:ff9b::0.0.0.0", "64:ff9b::224.0.0.1"])
      expect(answerVerdict(policy, ip), ip).toMatchObject({ keep: false, reason: "rebinding" });
    expect(answerVerdict(policy, "64:ff9b::198.51.100.20")).toMatchObject({ keep: false, reason: "denied range", rule: { id: "deny[0]" } });
    expect(answerVerdict(policy, "64:ff9b::198.51.100.10")).toMatchObject({ keep: true });
    expect(answerVerdict(policy, "64:ff9b::10.1.2.3"), "the allowed 10.1.0.0/16 covers what it reaches").toMatchObject({ keep: true });
    expect(answerVerdict(policyOf({ allowHost: ["a.test"], allowCidr: ["64:ff9b::/96"] }), "64:ff9b::10.0.0.1").keep).toBe(true);
    const denyOnly = policyOf({ denyCidr: ["10.0.0.0/8"] });
    expect(answerVerdict(denyOnly, "64:ff9b::10.0.0.1")).toMatchObject({ keep: false, reason: "denied range", rule: { id: "deny[0]" } });
    expect(answerVerdict(denyOnly, "64:ff9b::192.168.1.1").keep).toBe(true);
  });

  test("a local-use NAT64 answer (64:ff9b:1::/48) is refused once an allow rule exists, unless an allow rule covers it", () => {
    for (const ip of ["64:ff9b:1::a00:1", "64:ff9b:1:abcd::c633:640a"])
      expect(answerVerdict(policy, ip), ip).toMatchObject({ keep: false, reason: "rebinding" });
    const allowed = policyOf({ allowHost: ["a.test"], allowCidr: ["64:ff9b:1:abcd::/64"] });
    expect(answerVerdict(allowed, "64:ff9b:1:abcd::c633:640a").keep).toBe(true);
    expect(answerVerdict(allowed, "64:ff9b:1::a00:1").keep).toBe(false);
    expect(answerVerdict(policyOf({ denyCidr: ["198.51.100.20"] }), "64:ff9b:1::a00:1").keep).toBe(true);
  });

  test("the host's own addresses are refused once an allow rule exists, unless an allow rule covers them", () => {
    const host = ["203.0.113.9", "2001:db8:ff::1", "10.0.2.2"];
    const p = policyOf({ allowHost: ["a.test"] }, host);
    for (const ip of [...host, "64:ff9b::203.0.113.9"]) expect(answerVerdict(p, ip), ip).toMatchObject({ keep: false, reason: "rebinding" });
    expect(answerVerdict(p, "203.0.113.10").keep).toBe(true);
    expect(answerVerdict(p, "2001:db8:ff::2").keep).toBe(true);
    const hostAllowed = policyOf({ allowHost: ["a.test"], allowCidr: ["host:8080/tcp"] }, host);
    for (const ip of host) expect(answerVerdict(hostAllowed, ip).keep, ip).toBe(true);
    expect(answerVerdict(policyOf({ allowHost: ["a.test"], allowCidr: ["203.0.113.0/24:443"] }, host), "203.0.113.9").keep).toBe(true);
    const denyOnly = policyOf({ denyCidr: ["198.51.100.20"] }, host);
    for (const ip of host) expect(answerVerdict(denyOnly, ip).keep, ip).toBe(true);
  });

  test("property: a kept answer is never one a port-less deny rule covers", () => {
    fc.assert(
      fc.property(
        fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join(".")),
        fc.integer({ min: 8, max: 32 }),
        (ip, prefix) => {
          const p = policyOf({ allowHost: ["a.test"], allowCidr: ["0.0.0.0/0"], denyCidr: [`${ip}/${prefix}`] });
          expect(answerVerdict(p, ip).keep).toBe(false);
        },
      ),
    );
  });
});

describe("learned addresses", () => {
  test("kept at least 60 s and at most a day, the later expiry wins, then forgotten", () => {
    expect(learnedSeconds(0)).toBe(MIN_LEARNED_SECONDS);
    expect(learnedSeconds(300)).toBe(300);
    expect(learnedSeconds(2 ** 31)).toBe(MAX_LEARNED_SECONDS);
    const l = new LearnedAddresses();
    l.add("2001:DB8::0:1", 2, 600, 0);
    l.add("2001:db8::1", 2, 0, 0);
    const ip = parseIp("2001:db8::1")!;
    expect(l.rulesFor(ip, 599_000)).toEqual([2]);
    expect(l.rulesFor(ip, 600_000)).toEqual([]);
    expect(l.prune(600_000)).toBe(0);
    l.add("bogus", 0, 60, 0);
    expect(l.size).toBe(0);
  });
});

describe("src/egress's pure modules stay pure", () => {
  // The wiring: the resolver's Worker and its main-thread service, and nftables over netlink. Everything else is pure.
  const WIRING = new Set(["worker.ts", "service.ts", "nft-netlink.ts"]);

  test("imports only valibot, itself (not the wiring), the IP helpers, errors and quote: no fs, no ffi, no processes", async () => {
    const { readdirSync, readFileSync } = await import("node:fs");
    const dir = new URL("../../src/egress/", import.meta.url).pathname;
    const allowed = new Set(["valibot", "../net/cni/ip.ts", "../errors.ts", "../quote.ts"]);
    for (const file of readdirSync(dir)) {
      if (WIRING.has(file)) continue;
      const text = readFileSync(`${dir}${file}`, "utf8");
      for (const m of text.matchAll(/from "([^"]+)"/g)) {
        const source = m[1]!;
        const own = source.startsWith("./") && !WIRING.has(source.slice(2));
        expect(own || allowed.has(source), `${file} imports ${source}`).toBe(true);
      }
    }
  });
});
