// The egress ruleset loaded over netlink (src/egress/nft-netlink.ts,
// src/sys/nftables.ts) and refusals read from NFLOG (src/sys/nflog.ts),
// against the kernel in throwaway `unshare -rn` namespaces: the same
// verdict cases as the `nft -f` text (egress-nft.test.ts), the same table
// as `nft list` prints it for the text, learned addresses with their time
// left, replacing an earlier table, and the refused packets NFLOG reports.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { LEARNED_SET_SIZE, LOG_PREFIX, learnedSet, NFLOG_GROUP } from "../../src/egress/nft.ts";
import { learnAddresses, rulesetMessages } from "../../src/egress/nft-netlink.ts";
import { compilePolicy, type EgressFlags, MAX_RULES, parseEgressFlags } from "../../src/egress/policy.ts";
import { type NflogPacket, parsePacketHeader } from "../../src/sys/nflog.ts";
import { describeKernelAgreement, inNamespace, KERNEL_TEST_MS, kernelSkipReason } from "../helpers/egress-namespace.ts";

const none: EgressFlags = { allowHost: [], allowCidr: [], denyCidr: [], logOnly: false };
const compiled = (flags: Partial<EgressFlags>) => compilePolicy(parseEgressFlags({ ...none, ...flags })!, { hostAddresses: [] });

describe("the batch", () => {
  test("replaces the table in one transaction: add, delete, then the table, its learned sets and its base chain", () => {
    const messages = rulesetMessages(compiled({ allowHost: ["pypi.org:443"], denyCidr: ["private"] }));
    expect(messages.slice(0, 9).map((m) => m.what)).toEqual([
      "add table burrow_egress",
      "delete table burrow_egress",
      "add table burrow_egress",
      `add set burrow_egress ${learnedSet(0, 4)}`,
      `add set burrow_egress ${learnedSet(0, 6)}`,
      "add chain burrow_egress output",
      "ct state established,related accept",
      'oif "lo" meta mark accept',
      'oif "lo" fib saddr type local accept',
    ]);
  });

  test("learnAddresses refuses what is not an address of the set's family before it sends anything", () => {
    for (const bad of [
      { set: "allow_0_v4", address: "2001:db8::1" },
      { set: "allow_0_v6", address: "192.0.2.1" },
      { set: "allow_0_v4", address: "pypi.org" },
      { set: "deny_0_v4", address: "192.0.2.1" },
      { set: "allow_0_v4 } flush ruleset {", address: "192.0.2.1" },
    ])
      expect(() => learnAddresses(-1, [{ ...bad, seconds: 60 }])).toThrow(/^not a learned address/);
  });
});

describe("NFLOG packet headers", () => {
  const ipv4 = (protocol: number, transport: number[], fragmentOffset = 0) =>
    new Uint8Array([0x45, 0, 0, 40, 0, 0, fragmentOffset >> 8, fragmentOffset & 0xff, 64, protocol, 0, 0, 192, 0, 2, 2, 203, 0, 113, 5, ...transport]);
  const ipv6 = (next: number, rest: number[]) =>
    new Uint8Array([0x60, 0, 0, 0, 0, rest.length, next, 64, ...Array(16).fill(0), 0x20, 0x01, 0x0d, 0xb8, ...Array(10).fill(0), 0, 0x05, ...rest]);

  test("IPv4: destination, protocol and the TCP or UDP destination port", () => {
    expect(parsePacketHeader(ipv4(6, [0x9c, 0x40, 0x01, 0xbb]))).toEqual({ family: 4, destination: "203.0.113.5", protocol: "tcp", port: 443 });
    expect(parsePacketHeader(ipv4(17, [0x9c, 0x40, 0, 53]))).toEqual({ family: 4, destination: "203.0.113.5", protocol: "udp", port: 53 });
    expect(parsePacketHeader(ipv4(1, [8, 0, 0, 0]))).toEqual({ family: 4, destination: "203.0.113.5", protocol: "icmp" });
    expect(parsePacketHeader(ipv4(47, []))).toEqual({ family: 4, destination: "203.0.113.5", protocol: "other" });
    // A later fragment has no transport header: its first bytes are data, not ports.
    expect(parsePacketHeader(ipv4(17, [0x9c, 0x40, 0, 53], 0x10))).toEqual({ family: 4, destination: "203.0.113.5", protocol: "udp" });
  });

  test("IPv6: through hop-by-hop and destination options to the transport header", () => {
    expect(parsePacketHeader(ipv6(17, [0x9c, 0x40, 0, 53]))).toEqual({ family: 6, destination: "2001:db8::5", protocol: "udp", port: 53 });
    // Hop-by-hop (8 bytes) then ICMPv6, as an MLD report is sent.
    expect(parsePacketHeader(ipv6(0, [58, 0, 5, 2, 0, 0, 1, 0, 143, 0, 0, 0]))).toEqual({ family: 6, destination: "2001:db8::5", protocol: "icmp" });
    expect(parsePacketHeader(ipv6(60, [6, 0, 1, 4, 0, 0, 0, 0, 0x9c, 0x40, 0x1f, 0x90]))).toEqual({
      family: 6,
      destination: "2001:db8::5",
      protocol: "tcp",
      port: 8080,
    });
  });

  test("anything short, cut or not IP is no packet; random bytes never throw", () => {
    expect(parsePacketHeader(new Uint8Array([0x45, 0, 0]))).toBeNull();
    expect(parsePacketHeader(new Uint8Array(40))).toBeNull();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 128 }), (bytes) => {
        const p = parsePacketHeader(bytes);
        if (p) expect(["tcp", "udp", "icmp", "other"]).toContain(p.protocol);
      }),
    );
  });
});

describeKernelAgreement("netlink");

describe("netlink against the kernel", () => {
  const skip = kernelSkipReason();
  if (skip) console.log(`skipped: netlink in a real namespace: ${skip}`);
  // Counters count what the namespace itself sent meanwhile (IPv6 router and listener reports): not the ruleset.
  const body = (listing: string) => listing.replace(/ # handle \d+/g, "").replace(/counter packets \d+ bytes \d+/g, "counter");

  test.skipIf(skip !== null)(
    "nft list prints the same table for the netlink batch as for the text nft -f loads",
    () => {
      const policies: Partial<EgressFlags>[] = [
        { allowHost: ["pypi.org:443", "*.pythonhosted.org"], allowCidr: ["198.51.100.0/24:80,443/tcp", "[2001:db8::53]:53/udp"], denyCidr: ["private"] },
        { allowCidr: ["10.0.0.1:1-100/udp", "172.16.0.0/12:80,1000-2000", "0.0.0.0/0:22", "::/0/udp", "2001:db8::/32:8000-8080"] },
        { denyCidr: ["192.0.2.0/24/udp", "203.0.113.7", "private:25"] },
        { allowHost: ["a.test"], denyCidr: ["private"], logOnly: true },
      ];
      const same = (flags: Partial<EgressFlags>) => {
        const text = inNamespace({ loader: "nft -f", flags, hostAddresses: ["192.0.2.1", "2001:db8:ff::1"] });
        const netlink = inNamespace({ loader: "netlink", flags, hostAddresses: ["192.0.2.1", "2001:db8:ff::1"] });
        expect(body(netlink.listing), JSON.stringify(flags)).toBe(body(text.listing));
      };
      policies.forEach(same);
      // And for random policies of the flags' whole range.
      const target = fc.constantFrom("198.51.100.0/24", "198.51.100.10", "10.0.0.0/8", "2001:db8::/32", "private", "host", "0.0.0.0/0", "::/0");
      const tail = fc.constantFrom("", ":53", ":443", ":80,443", ":1-100", ":80,400-500,600", "/udp", ":443/tcp", ":53/udp");
      const rule = fc.tuple(target, tail).map(([t, p]) => (p.startsWith(":") && t.includes(":") && !t.includes("/") ? `[${t}]${p}` : `${t}${p}`));
      fc.assert(
        fc.property(
          fc.array(rule, { maxLength: 3 }),
          fc.array(rule, { maxLength: 2 }),
          fc.array(tail, { maxLength: 2 }),
          fc.boolean(),
          (allowCidr, denyCidr, hosts, logOnly) => {
            const allowHost = hosts.map((t, i) => `h${i}.test${t}`);
            if (allowCidr.length + denyCidr.length + allowHost.length > 0) same({ allowHost, allowCidr, denyCidr, logOnly });
          },
        ),
        { numRuns: 8 },
      );
    },
    KERNEL_TEST_MS,
  );

  test.skipIf(skip !== null)(
    "a policy of MAX_RULES rules with presets and port lists (a batch of 760 KiB, over three times a socket's default send buffer) loads",
    () => {
      const flags: Partial<EgressFlags> = {
        denyCidr: Array.from({ length: 128 }, (_, i) => (i % 2 ? "private:1-100,200-300" : `10.${i}.0.0/16`)),
        allowHost: Array.from({ length: 64 }, (_, i) => `h${i}.example.com:443,8000-8080`),
        allowCidr: Array.from({ length: 64 }, (_, i) => `2001:db8:${i}::/48:80,443`),
      };
      expect(flags.denyCidr!.length + flags.allowHost!.length + flags.allowCidr!.length).toBe(MAX_RULES);
      expect(rulesetMessages(compiled(flags)).length).toBeGreaterThan(3000);
      const r = inNamespace({ loader: "netlink", flags, udp: ["10.1.0.1:9", "10.2.0.1:9"] });
      expect(r.hasAfter).toBe(true);
      expect(r.kernel).toEqual({ "udp 10.1.0.1:9": false, "udp 10.2.0.1:9": false });
    },
    KERNEL_TEST_MS,
  );

  test.skipIf(skip !== null)(
    "hasRuleset is false before and true after; a second load replaces the first table entirely",
    () => {
      const flags: Partial<EgressFlags> = { allowCidr: ["198.51.100.10"], denyCidr: ["203.0.113.0/24"] };
      const once = inNamespace({ loader: "netlink", flags });
      const twice = inNamespace({
        loader: "netlink",
        flags,
        before: { allowHost: ["old.test"], allowCidr: ["203.0.113.0/24"], denyCidr: ["198.51.100.10"], logOnly: true },
        udp: ["198.51.100.10:9", "203.0.113.5:9", "192.0.2.9:9"],
      });
      expect([once.hasBefore, once.hasAfter]).toEqual([false, true]);
      expect(twice.hasBefore).toBe(false);
      expect(body(twice.listing)).toBe(body(once.listing));
      expect(twice.kernel).toEqual({ "udp 198.51.100.10:9": true, "udp 203.0.113.5:9": false, "udp 192.0.2.9:9": false });
    },
    KERNEL_TEST_MS,
  );

  test.skipIf(skip !== null)(
    "learned addresses are read back with the time they have left, and learning again moves it",
    () => {
      const r = inNamespace({
        loader: "netlink",
        flags: { allowHost: ["a.test", "b.test:443"] },
        learn: [
          { set: learnedSet(0, 4), address: "203.0.113.5", seconds: 300 },
          { set: learnedSet(0, 6), address: "2001:DB8::0:5", seconds: 90.7 },
          { set: learnedSet(1, 4), address: "203.0.113.5", seconds: 60 },
          { set: learnedSet(1, 4), address: "203.0.113.6", seconds: 60 },
        ],
        relearn: [{ set: learnedSet(1, 4), address: "203.0.113.6", seconds: 600 }],
        udp: ["203.0.113.5:9", "203.0.113.6:443", "203.0.113.6:9", "203.0.113.7:9"],
      });
      expect(r.learnError).toBeUndefined();
      const left = Object.fromEntries(r.learned!.map((e) => [`${e.set} ${e.address}`, e.expiresInMs]));
      expect(Object.keys(left).sort()).toEqual(["allow_0_v4 203.0.113.5", "allow_0_v6 2001:db8::5", "allow_1_v4 203.0.113.5", "allow_1_v4 203.0.113.6"]);
      const within = (key: string, seconds: number) => {
        expect(left[key]!, key).toBeLessThanOrEqual(seconds * 1000);
        expect(left[key]!, key).toBeGreaterThan(seconds * 1000 - 5000);
      };
      within("allow_0_v4 203.0.113.5", 300);
      within("allow_0_v6 2001:db8::5", 90);
      within("allow_1_v4 203.0.113.5", 60);
      within("allow_1_v4 203.0.113.6", 600);
      expect(r.kernel).toEqual({ "udp 203.0.113.5:9": true, "udp 203.0.113.6:443": true, "udp 203.0.113.6:9": false, "udp 203.0.113.7:9": false });
    },
    KERNEL_TEST_MS,
  );

  test.skipIf(skip !== null)(
    "a kernel error names the message it failed on, and nothing of its batch is applied",
    () => {
      const r = inNamespace({
        loader: "netlink",
        flags: { allowHost: ["a.test"] },
        learn: [
          { set: learnedSet(0, 4), address: "203.0.113.5", seconds: 60 },
          { set: learnedSet(3, 4), address: "203.0.113.6", seconds: 60 },
        ],
      });
      expect(r.learnError?.code).toBe("ENOENT");
      expect(r.learnError?.message).toContain(`add element burrow_egress ${learnedSet(3, 4)}`);
      // The batch is one transaction: the good set's element went with the bad one.
      expect(r.learned).toEqual([]);
    },
    KERNEL_TEST_MS,
  );

  test.skipIf(skip !== null)(
    "a learned set holds at most LEARNED_SET_SIZE addresses: one more is a kernel error (the resolver then fails the lookup), not unbounded kernel memory",
    () => {
      const addresses = (from: number, count: number) =>
        Array.from({ length: count }, (_, i) => ({
          set: learnedSet(0, 4),
          address: `10.${((from + i) >> 16) & 255}.${((from + i) >> 8) & 255}.${(from + i) & 255}`,
          seconds: 60,
        }));
      // Two batches, as DNS answers come: a batch adds, deletes and adds each element again (a refresh), which the kernel counts against the size within the batch.
      const half = LEARNED_SET_SIZE / 2;
      const full = inNamespace({ loader: "netlink", flags: { allowHost: ["a.test"] }, learn: addresses(0, half), relearn: addresses(half, half) });
      expect(full.learnError).toBeUndefined();
      expect(full.learned).toHaveLength(LEARNED_SET_SIZE);
      const over = inNamespace({ loader: "netlink", flags: { allowHost: ["a.test"] }, learn: addresses(0, half), relearn: addresses(half, half + 1) });
      expect(over.learnError?.code).toBe("ENFILE");
      expect(over.learned).toHaveLength(half);
    },
    KERNEL_TEST_MS,
  );

  test.skipIf(skip !== null)(
    "NFLOG reports each refused packet's destination, port, protocol and rule: TCP, UDP and ICMP, IPv4 and IPv6",
    () => {
      const r = inNamespace({
        loader: "netlink",
        flags: { allowCidr: ["198.51.100.10:443/tcp"], denyCidr: ["203.0.113.0/24", "2001:db8:dead::/48"] },
        nflog: true,
        udp: ["203.0.113.5:99", "2001:db8::5:53", "198.51.100.10:443"],
        tcp: ["192.0.2.77:80", "2001:db8:dead::1:8080", "198.51.100.10:443"],
        icmp: ["198.51.100.20", "2001:db8::7"],
      });
      expect(r.kernel).toEqual({
        "udp 203.0.113.5:99": false,
        "udp 2001:db8::5:53": false,
        "udp 198.51.100.10:443": false,
        "tcp 192.0.2.77:80": false,
        "tcp 2001:db8:dead::1:8080": false,
        "tcp 198.51.100.10:443": true,
        "icmp 198.51.100.20": false,
        "icmp 2001:db8::7": false,
      });
      // Nothing queued yet: the read returns at once, empty.
      expect(r.logsBeforeLoad).toEqual([]);
      const logs = r.logs!;
      const expected: NflogPacket[] = [
        { prefix: `${LOG_PREFIX}deny[0] `, family: 4, destination: "203.0.113.5", protocol: "udp", port: 99 },
        { prefix: `${LOG_PREFIX}dns `, family: 6, destination: "2001:db8::5", protocol: "udp", port: 53 },
        { prefix: `${LOG_PREFIX}default `, family: 4, destination: "198.51.100.10", protocol: "udp", port: 443 },
        { prefix: `${LOG_PREFIX}default `, family: 4, destination: "192.0.2.77", protocol: "tcp", port: 80 },
        { prefix: `${LOG_PREFIX}deny[1] `, family: 6, destination: "2001:db8:dead::1", protocol: "tcp", port: 8080 },
        { prefix: `${LOG_PREFIX}default `, family: 4, destination: "198.51.100.20", protocol: "icmp" },
        { prefix: `${LOG_PREFIX}default `, family: 6, destination: "2001:db8::7", protocol: "icmp" },
      ];
      for (const e of expected) expect(logs).toContainEqual(e);
      // Nothing that was let out is reported.
      expect(logs.filter((l) => l.destination === "198.51.100.10" && l.protocol === "tcp")).toEqual([]);
      expect(logs.every((l) => l.prefix.startsWith(LOG_PREFIX))).toBe(true);
      expect(NFLOG_GROUP).toBe(25205);
    },
    KERNEL_TEST_MS,
  );
});
