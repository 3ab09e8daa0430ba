// Refusal events without flooding (src/egress/refusals.ts): the first of a
// kind at once, repeats folded into one event per window, a cap per window.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { compilePolicy, parseEgressFlags } from "../../src/egress/policy.ts";
import { loggedRefusal, type Refusal, RefusalEvents, refusalStatus } from "../../src/egress/refusals.ts";

const refusal = (destination: string, port = 443): Refusal => ({ destination, port, protocol: "tcp", rule: "--deny-cidr private", reason: "deny rule" });

describe("refusal events", () => {
  test("the first of a kind at once; its repeats as one event with a count when the window ends", () => {
    const events = new RefusalEvents({ windowMs: 60_000, perWindow: 60, maxKinds: 1024 });
    expect(events.offer(refusal("10.0.0.1"), 0)).toEqual([{ ...refusal("10.0.0.1"), count: 1 }]);
    for (let i = 1; i <= 1000; i++) expect(events.offer(refusal("10.0.0.1"), i)).toEqual([]);
    expect(events.offer(refusal("10.0.0.1", 80), 2000)).toEqual([{ ...refusal("10.0.0.1", 80), count: 1 }]);
    expect(events.flush(59_999)).toEqual([]);
    expect(events.flush(60_000)).toEqual([{ ...refusal("10.0.0.1"), count: 1000 }]);
    expect(events.flush(200_000)).toEqual([]);
    expect(events.offer(refusal("10.0.0.1"), 200_001)).toEqual([{ ...refusal("10.0.0.1"), count: 1 }]);
  });

  test("more kinds than a window allows: a count of the rest, in one event", () => {
    const events = new RefusalEvents({ windowMs: 1000, perWindow: 3, maxKinds: 1024 });
    const out = Array.from({ length: 10 }, (_, i) => events.offer(refusal(`198.51.100.${i}`), 1)).flat();
    expect(out.map((e) => e.destination)).toEqual(["198.51.100.0", "198.51.100.1", "198.51.100.2"]);
    expect(events.flush(1001)).toEqual([
      { destination: "", protocol: "", rule: null, reason: "suppressed: more refusals than events allowed in a minute", count: 7 },
    ]);
  });

  test("property: every refusal is counted exactly once, by no more events than refusals", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(5), fc.nat(3_000)), { maxLength: 300 }).map((xs) => xs.sort((a, b) => a[1] - b[1])),
        (offers) => {
          const events = new RefusalEvents({ windowMs: 1000, perWindow: 4, maxKinds: 3 });
          const all = offers.flatMap(([kind, at]) => events.offer(refusal(`192.0.2.${kind}`), at));
          all.push(...events.flush(10_000));
          expect(all.reduce((n, e) => n + e.count, 0)).toBe(offers.length);
          expect(all.length).toBeLessThanOrEqual(offers.length);
          expect(all.every((e) => e.count >= 1)).toBe(true);
        },
      ),
    );
  });

  test("a tight loop over ever new addresses yields at most perWindow events and one count per window", () => {
    const events = new RefusalEvents({ windowMs: 60_000, perWindow: 60, maxKinds: 1024 });
    const out = Array.from({ length: 100_000 }, (_, i) => events.offer(refusal(`198.51.${(i >> 8) & 255}.${i & 255}`, 1 + (i % 60_000)), i / 10)).flat();
    out.push(...events.flush(60_000));
    expect(out.length).toBe(61);
    expect(out.at(-1)!.count).toBe(100_000 - 60);
  });
});

describe("refusals from the ruleset's log and their status", () => {
  const policy = compilePolicy(parseEgressFlags({ allowHost: ["pypi.org"], allowCidr: [], denyCidr: ["private", "[2001:db8::1]:443/tcp"], logOnly: false })!, {
    hostAddresses: [],
  });

  test("the log prefix names the rule: its flag text and the reason", () => {
    const at = { destination: "10.0.0.1", protocol: "tcp", port: 22 };
    expect(loggedRefusal(policy, { ...at, prefix: "burrow-egress deny[0] " })).toEqual({ ...at, rule: "--deny-cidr private", reason: "deny rule" });
    expect(loggedRefusal(policy, { ...at, prefix: "burrow-egress deny[1] " })).toEqual({
      ...at,
      rule: "--deny-cidr [2001:db8::1/128]:443/tcp",
      reason: "deny rule",
    });
    expect(loggedRefusal(policy, { ...at, prefix: "burrow-egress dns " })).toEqual({ ...at, rule: null, reason: "dns to another resolver" });
    expect(loggedRefusal(policy, { destination: "192.0.2.1", protocol: "icmp", prefix: "burrow-egress default " })).toEqual({
      destination: "192.0.2.1",
      protocol: "icmp",
      rule: null,
      reason: "default deny",
    });
  });

  test("a prefix that is not burrow's, or a rule the policy does not have: no refusal", () => {
    const at = { destination: "10.0.0.1", protocol: "tcp", port: 22 };
    expect(loggedRefusal(policy, { ...at, prefix: "iptables DROP " })).toBeNull();
    expect(loggedRefusal(policy, { ...at, prefix: "burrow-egress deny[7] " })).toBeNull();
    expect(loggedRefusal(policy, { ...at, prefix: "burrow-egress allow[0] " })).toBeNull();
  });

  test("status: would-refuse under --egress-log-only, dns-refused for a name, refused otherwise", () => {
    expect(refusalStatus(false, refusal("10.0.0.1"))).toBe("egress-refused");
    expect(refusalStatus(false, { ...refusal(""), name: "evil.test" })).toBe("egress-dns-refused");
    expect(refusalStatus(true, { ...refusal(""), name: "evil.test" })).toBe("egress-would-refuse");
    expect(refusalStatus(true, refusal("10.0.0.1"))).toBe("egress-would-refuse");
  });
});
