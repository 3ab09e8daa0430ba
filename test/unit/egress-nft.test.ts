// The nftables ruleset of an egress policy (src/egress/nft.ts): its shape,
// and, where `nft` and unprivileged user namespaces exist, the kernel's own
// verdicts on UDP sends, TCP connects and ICMP echoes in a throwaway `unshare -rn` namespace
// compared with policy.ts's `verdict` (the host's network is never touched; the harness is
// test/helpers/egress-namespace.ts, shared with egress-nft-netlink.test.ts).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { FORWARDER_MARK, LOG_LIMIT, LOG_PREFIX, learnedSet, NFLOG_GROUP, nftLearn, nftRuleset, refusalTag, TABLE } from "../../src/egress/nft.ts";
import { compilePolicy, type EgressFlags, parseEgressFlags } from "../../src/egress/policy.ts";
import { describeKernelAgreement } from "../helpers/egress-namespace.ts";
import { CLIENT_MARK } from "../../src/ports/client-address.ts";

const none: EgressFlags = { allowHost: [], allowCidr: [], denyCidr: [], logOnly: false };
const compiled = (flags: Partial<EgressFlags>, hostAddresses: string[] = []) => compilePolicy(parseEgressFlags({ ...none, ...flags })!, { hostAddresses });
const chainLines = (text: string) =>
  text
    .slice(text.indexOf("chain output {"))
    .split("\n")
    .slice(2)
    .map((l) => l.trim())
    .filter((l) => l !== "" && l !== "}");

test("the ruleset's forwarder mark is the one the connector puts on its client-address connections", () => {
  expect(FORWARDER_MARK).toBe(CLIENT_MARK);
});

describe("ruleset text", () => {
  const policy = compiled({ allowHost: ["pypi.org:443"], allowCidr: ["198.51.100.0/24:80,443/tcp", "[2001:db8::53]:53/udp"], denyCidr: ["private"] });
  const text = nftRuleset(policy);

  test("replaces burrow's own table in one transaction, with a learned set per host rule and family", () => {
    expect(text.split("\n").slice(0, 3)).toEqual([`table inet ${TABLE}`, `delete table inet ${TABLE}`, `table inet ${TABLE} {`]);
    expect(text).toContain(`set ${learnedSet(0, 4)} { type ipv4_addr; flags timeout;`);
    expect(text).toContain(`set ${learnedSet(0, 6)} { type ipv6_addr; flags timeout;`);
    expect(text).toContain("type filter hook output priority filter; policy accept;");
  });

  test("established first, then the loopback, deny before DNS before allow, refusal last", () => {
    const lines = chainLines(text);
    // Established first (the bulk of the traffic crosses one rule), then the loopback from local sources only (the forwarder's marked connections and our own resets aside), then its forged sources refused.
    expect(lines[0]).toBe("ct state established,related accept");
    expect(lines.slice(1, 4)).toEqual([
      'oif "lo" meta mark 0x00006275 accept',
      'oif "lo" fib saddr type local accept',
      'oif "lo" tcp flags & rst == rst accept',
    ]);
    expect(lines[4]).toStartWith(`oif "lo" ${LOG_LIMIT} log prefix "${LOG_PREFIX}spoof "`);
    expect(lines.slice(5, 7)).toEqual(['oif "lo" meta l4proto tcp counter reject with tcp reset', 'oif "lo" counter drop']);
    const first = (s: string) => lines.findIndex((l) => l.includes(s));
    expect(first("deny[0]")).toBeLessThan(first("2001:db8::53/128"));
    expect(first("2001:db8::53/128")).toBeLessThan(first(`"${LOG_PREFIX}dns `));
    expect(first(`"${LOG_PREFIX}dns `)).toBeLessThan(first("198.51.100.0/24"));
    expect(lines.at(-1)).toBe("counter drop");
  });

  test("every rate-limited log line is followed by the same match's own verdicts, so the limit never changes a verdict", () => {
    for (const logOnly of [false, true]) {
      const lines = chainLines(nftRuleset(compiled({ allowHost: ["a.test"], denyCidr: ["private", "0.0.0.0/0:25", "192.0.2.0/24/udp"], logOnly })));
      lines.forEach((l, i) => {
        if (!l.includes(" log prefix ")) return;
        const match = l.slice(0, l.indexOf("limit rate")).trim();
        const m = match === "" ? "" : `${match} `;
        expect(l).toContain(`group ${NFLOG_GROUP}`);
        // TCP gets a reset (connect fails at once); a UDP-only match has no TCP to reset.
        const verdicts = logOnly
          ? [`${m}counter accept`]
          : match.includes("meta l4proto udp")
            ? [`${m}counter drop`]
            : [`${m}meta l4proto tcp counter reject with tcp reset`, `${m}counter drop`];
        expect(lines.slice(i + 1, i + 1 + verdicts.length)).toEqual(verdicts);
      });
    }
  });

  test("deny rules only: no DNS guard and no default refusal", () => {
    const lines = chainLines(nftRuleset(compiled({ denyCidr: ["198.51.100.20"] })));
    expect(lines.some((l) => l.includes("dport 53"))).toBe(false);
    expect(lines.slice(-2)).toEqual(["ip daddr 198.51.100.20/32 meta l4proto tcp counter reject with tcp reset", "ip daddr 198.51.100.20/32 counter drop"]);
  });

  test("log prefixes map back to rule ids", () => {
    expect(refusalTag(`${LOG_PREFIX}deny[3] `)).toBe("deny[3]");
    expect(refusalTag(`${LOG_PREFIX}default `)).toBe("default");
    expect(refusalTag("someone else ")).toBeNull();
  });

  test("learned addresses: canonical, re-added with their new timeout; anything else is refused", () => {
    expect(nftLearn([{ address: "2001:DB8::0:5", rule: 1, seconds: 90.7 }])).toBe(
      [
        `add element inet ${TABLE} allow_1_v6 { 2001:db8::5 timeout 90s }`,
        `delete element inet ${TABLE} allow_1_v6 { 2001:db8::5 }`,
        `add element inet ${TABLE} allow_1_v6 { 2001:db8::5 timeout 90s }`,
        "",
      ].join("\n"),
    );
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          const out = nftLearn([{ address: s, rule: 0, seconds: 60 }]);
          expect(out).toMatch(/^add element inet burrow_egress allow_0_v[46] \{ [0-9a-f.:]+ timeout 60s \}\n/);
        } catch (e) {
          expect((e as Error).message).toStartWith("not a learned address");
        }
      }),
    );
  });
});

// The kernel's verdicts with the text loaded by `nft -f` (egress-nft-netlink.test.ts runs the same cases loaded over netlink).
describeKernelAgreement("nft -f");
