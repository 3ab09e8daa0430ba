// A throwaway `unshare -rn` namespace with an egress ruleset loaded, for the
// unit tests of src/egress/nft.ts (text, `nft -f`) and nft-netlink.ts
// (netlink): one bun process (egress-namespace-child.ts) runs inside it,
// gives itself a veth with default routes that lead nowhere, loads the
// ruleset either way, sends to each destination and reports what the kernel
// let out. The host's network is never touched. A Bun test cannot move its
// own threads into a namespace freely, hence the child.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import fc from "fast-check";
import { LearnedAddresses, learnedSeconds } from "../../src/egress/learned.ts";
import { learnedSet } from "../../src/egress/nft.ts";
import { compilePolicy, type EgressFlags, parseEgressFlags, verdict } from "../../src/egress/policy.ts";
import type { NflogPacket } from "../../src/sys/nflog.ts";

/** Why the kernel tests cannot run here, or null. */
export function kernelSkipReason(): string | null {
  if (spawnSync("nft", ["--version"]).status !== 0) return "nft is not installed (Debian: nftables)";
  if (spawnSync("unshare", ["-rn", "true"]).status !== 0) return "unprivileged user namespaces are not available (unshare -rn failed)";
  if (spawnSync("unshare", ["-rn", "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"]).status !== 0) return "no veth in a user namespace";
  return null;
}

export type Loader = "nft -f" | "netlink";

export interface NamespaceRun {
  loader: Loader;
  flags: Partial<EgressFlags>;
  hostAddresses?: string[];
  /** A policy loaded first, which the real one must replace entirely. */
  before?: Partial<EgressFlags>;
  /** Learned addresses, added after the ruleset (nftLearn's text, or learnAddresses). */
  learn?: { set: string; address: string; seconds: number }[];
  /** Netlink only: a second learnAddresses after the first (a refresh), before readLearned. */
  relearn?: { set: string; address: string; seconds: number }[];
  /** `IP:PORT` (IPv6 unbracketed: the last colon splits). */
  udp?: readonly string[];
  /** TCP connects: a refused one fails at once (the ruleset's reset), an allowed one waits out a 2 s timeout. */
  tcp?: readonly string[];
  /** ICMP echo requests (raw sockets: the child has CAP_NET_RAW over its namespace). */
  icmp?: readonly string[];
  /** Open an NFLOG socket on the ruleset's group before sending, and report what it read. */
  nflog?: boolean;
}

export interface NamespaceResult {
  /** "udp 198.51.100.10:443", "tcp ...", "icmp 203.0.113.5": true where the kernel let it out. */
  kernel: Record<string, boolean>;
  /** hasRuleset() before and after loading (netlink only). */
  hasBefore?: boolean;
  hasAfter?: boolean;
  /** readLearned() after learning (netlink only). */
  learned?: { set: string; address: string; expiresInMs: number }[];
  /** What learnAddresses threw, if it did (netlink only). */
  learnError?: { message: string; code?: string };
  logs?: NflogPacket[];
  /** readNflog() on the NFLOG socket before any ruleset was loaded. */
  logsBeforeLoad?: NflogPacket[];
  /** `nft list table inet burrow_egress` once loaded. */
  listing: string;
  loadMs: number;
}

/** Runs one namespace; throws with the child's stderr when it fails. */
export function inNamespace(run: NamespaceRun): NamespaceResult {
  const child = join(import.meta.dir, "egress-namespace-child.ts");
  const r = spawnSync("unshare", ["-rn", process.execPath, child], { input: JSON.stringify(run), encoding: "utf8" });
  if (r.status !== 0) throw new Error(`egress namespace child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as NamespaceResult;
}

export const split = (d: string) => ({ ip: d.slice(0, d.lastIndexOf(":")), port: Number(d.slice(d.lastIndexOf(":") + 1)) });

/** A namespace, a ruleset and sends per case; the TCP cases wait out one 2 s timeout for the allowed connects. */
export const KERNEL_TEST_MS = 30_000;

const none: EgressFlags = { allowHost: [], allowCidr: [], denyCidr: [], logOnly: false };
const compiled = (flags: Partial<EgressFlags>, hostAddresses: string[] = []) => compilePolicy(parseEgressFlags({ ...none, ...flags })!, { hostAddresses });

/**
 * The kernel agrees with verdict(): the same cases for every way of loading
 * the ruleset (egress-nft.test.ts: `nft -f`; egress-nft-netlink.test.ts:
 * netlink), each UDP send, TCP connect and ICMP echo let out exactly when
 * verdict() allows it.
 */
export function describeKernelAgreement(loader: Loader): void {
  describe(`the kernel agrees with verdict() (${loader})`, () => {
    const skip = kernelSkipReason();
    if (skip) console.log(`skipped: the ruleset in a real namespace: ${skip}`);

    const flags: Partial<EgressFlags> = {
      allowHost: ["allowed.test"],
      allowCidr: ["198.51.100.10:443/udp", "host", "[2001:db8:1::10]:443"],
      denyCidr: ["198.51.100.20", "private"],
    };
    const destinations = [
      "198.51.100.10:443",
      "198.51.100.10:444",
      "198.51.100.20:443",
      "203.0.113.5:9",
      "203.0.113.6:9",
      "192.0.2.1:9",
      "198.51.100.53:53",
      "203.0.113.5:53",
      "10.1.2.3:443",
      "127.0.0.1:9",
      "2001:db8:1::10:443",
      "2001:db8:1::10:80",
      "2001:db8:2::5:9",
    ];
    // A TCP connect to the sandbox's own loopback is answered by its own stack (a reset: nobody listens), not the ruleset.
    const tcpDestinations = destinations.filter((d) => !d.startsWith("127."));
    const icmpDestinations = ["198.51.100.10", "198.51.100.20", "203.0.113.5", "203.0.113.6", "192.0.2.1", "10.1.2.3", "2001:db8:1::10", "2001:db8:2::5"];

    test.skipIf(skip !== null)(
      "enforcing: each UDP send, TCP connect and ICMP echo goes out exactly when verdict() allows it; refused connects fail at once",
      () => {
        const policy = compiled(flags, ["192.0.2.1"]);
        const learned = new LearnedAddresses();
        learned.add("203.0.113.5", 0, 300, 0);
        const { kernel } = inNamespace({
          loader,
          flags,
          hostAddresses: ["192.0.2.1"],
          learn: [{ set: learnedSet(0, 4), address: "203.0.113.5", seconds: learnedSeconds(300) }],
          udp: destinations,
          tcp: tcpDestinations,
          icmp: icmpDestinations,
        });
        const judge = (ip: string, port: number | undefined, protocol: "udp" | "tcp" | "icmp") =>
          verdict(policy, { ip, ...(port === undefined ? {} : { port }), protocol }, (a) => learned.rulesFor(a, 1000)).allow;
        const expected = Object.fromEntries([
          ...destinations.map((d) => [`udp ${d}`, judge(split(d).ip, split(d).port, "udp")]),
          ...tcpDestinations.map((d) => [`tcp ${d}`, judge(split(d).ip, split(d).port, "tcp")]),
          ...icmpDestinations.map((ip) => [`icmp ${ip}`, judge(ip, undefined, "icmp")]),
        ]);
        expect(kernel).toEqual(expected);
        // And the cases themselves are what docs/egress.md says.
        expect(expected).toMatchObject({
          "udp 198.51.100.10:443": true,
          "tcp 198.51.100.10:443": false,
          "udp 198.51.100.10:444": false,
          "udp 198.51.100.20:443": false,
          "tcp 203.0.113.5:9": true,
          "udp 203.0.113.5:53": false,
          "tcp 10.1.2.3:443": false,
          "tcp 2001:db8:1::10:443": true,
          "icmp 203.0.113.5": true,
          "icmp 203.0.113.6": false,
          "icmp 2001:db8:1::10": false,
        });
      },
      KERNEL_TEST_MS,
    );

    test.skipIf(skip !== null)(
      "property: for random policies, the kernel lets out exactly the UDP sends verdict() allows",
      () => {
        const targets = [
          "198.51.100.0/24",
          "198.51.100.10",
          "203.0.113.0/24",
          "10.0.0.0/8",
          "2001:db8::/32",
          "[2001:db8:1::10]",
          "private",
          "host",
          "0.0.0.0/0",
          "::/0",
        ];
        const tails = ["", ":53", ":443", ":80,443", ":1-100", ":80,400-500", "/udp", ":443/tcp", ":53/udp"];
        const rule = fc
          .tuple(fc.constantFrom(...targets), fc.constantFrom(...tails))
          .map(([t, tail]) => (tail.startsWith(":") && t.includes(":") && !t.includes("/") && !t.startsWith("[") ? `[${t}]${tail}` : `${t}${tail}`));
        const sent = ["198.51.100.10", "198.51.100.20", "203.0.113.5", "10.1.2.3", "192.0.2.1", "2001:db8:1::10", "fd00::5"].flatMap((ip) =>
          [53, 80, 443, 9].map((port) => `${ip}:${port}`),
        );
        fc.assert(
          fc.property(
            fc.array(rule, { maxLength: 3 }),
            fc.array(rule, { maxLength: 2 }),
            fc.option(fc.constantFrom(...tails), { nil: undefined }),
            (allowCidr, denyCidr, hostTail) => {
              const allowHost = hostTail === undefined ? [] : [`a.test${hostTail}`];
              if (allowCidr.length + denyCidr.length + allowHost.length === 0) return;
              const policy = compiled({ allowHost, allowCidr, denyCidr }, ["192.0.2.1"]);
              const learned = new LearnedAddresses();
              if (allowHost.length) learned.add("203.0.113.5", 0, 300, 0);
              const { kernel } = inNamespace({
                loader,
                flags: { allowHost, allowCidr, denyCidr },
                hostAddresses: ["192.0.2.1"],
                learn: allowHost.length ? [{ set: learnedSet(0, 4), address: "203.0.113.5", seconds: 300 }] : [],
                udp: sent,
              });
              const expected = Object.fromEntries(
                sent.map((d) => [`udp ${d}`, verdict(policy, { ...split(d), protocol: "udp" }, (ip) => learned.rulesFor(ip, 1000)).allow]),
              );
              expect(kernel, `${JSON.stringify({ allowHost, allowCidr, denyCidr })}`).toEqual(expected);
            },
          ),
          { numRuns: 12 },
        );
      },
      KERNEL_TEST_MS,
    );

    test.skipIf(skip !== null)(
      "--egress-log-only: nothing is refused",
      () => {
        const { kernel } = inNamespace({
          loader,
          flags: { ...flags, logOnly: true },
          hostAddresses: ["192.0.2.1"],
          udp: destinations,
          tcp: tcpDestinations,
          icmp: icmpDestinations,
        });
        expect(Object.values(kernel).every(Boolean)).toBe(true);
        expect(Object.keys(kernel)).toHaveLength(destinations.length + tcpDestinations.length + icmpDestinations.length);
      },
      KERNEL_TEST_MS,
    );
  });
}
