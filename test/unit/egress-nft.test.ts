// The nftables ruleset of an egress policy (src/egress/nft.ts): its shape,
// and, where `nft` and unprivileged user namespaces exist, the kernel's own
// verdicts on UDP sends and TCP connects in a throwaway `unshare -rn` namespace compared with
// policy.ts's `verdict` (the host's network is never touched).
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { LearnedAddresses, learnedSeconds } from "../../src/egress/learned.ts";
import { LOG_PREFIX, learnedSet, NFLOG_GROUP, nftLearn, nftRuleset, refusalTag, TABLE } from "../../src/egress/nft.ts";
import { compilePolicy, type EgressFlags, parseEgressFlags, verdict } from "../../src/egress/policy.ts";

const none: EgressFlags = { allowHost: [], allowCidr: [], denyCidr: [], logOnly: false };
const compiled = (flags: Partial<EgressFlags>, hostAddresses: string[] = []) => compilePolicy(parseEgressFlags({ ...none, ...flags })!, { hostAddresses });
const chainLines = (text: string) =>
  text
    .slice(text.indexOf("chain output {"))
    .split("\n")
    .slice(2)
    .map((l) => l.trim())
    .filter((l) => l !== "" && l !== "}");

describe("ruleset text", () => {
  const policy = compiled({ allowHost: ["pypi.org:443"], allowCidr: ["198.51.100.0/24:80,443/tcp", "[2001:db8::53]:53/udp"], denyCidr: ["private"] });
  const text = nftRuleset(policy);

  test("replaces burrow's own table in one transaction, with a learned set per host rule and family", () => {
    expect(text.split("\n").slice(0, 3)).toEqual([`table inet ${TABLE}`, `delete table inet ${TABLE}`, `table inet ${TABLE} {`]);
    expect(text).toContain(`set ${learnedSet(0, 4)} { type ipv4_addr; flags timeout;`);
    expect(text).toContain(`set ${learnedSet(0, 6)} { type ipv6_addr; flags timeout;`);
    expect(text).toContain("type filter hook output priority filter; policy accept;");
  });

  test("loopback and established first, deny before DNS before allow, refusal last", () => {
    const lines = chainLines(text);
    expect(lines[0]).toBe('oif "lo" accept');
    expect(lines[1]).toBe("ct state established,related accept");
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

/** Why the kernel test cannot run here, or null. */
function kernelSkipReason(): string | null {
  if (spawnSync("nft", ["--version"]).status !== 0) return "nft is not installed (Debian: nftables)";
  if (spawnSync("unshare", ["-rn", "true"]).status !== 0) return "unprivileged user namespaces are not available (unshare -rn failed)";
  if (spawnSync("unshare", ["-rn", "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"]).status !== 0) return "no veth in a user namespace";
  return null;
}

/** A namespace, a ruleset and sends per case; the TCP cases wait out one 2 s timeout for the allowed connects. */
const KERNEL_TEST_MS = 30_000;

describe("the kernel agrees with verdict()", () => {
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
  const split = (d: string) => ({ ip: d.slice(0, d.lastIndexOf(":")), port: Number(d.slice(d.lastIndexOf(":") + 1)) });

  /** Sends one UDP datagram to each destination from a fresh namespace with the ruleset loaded: true where the kernel let it out. */
  function sendAll(ruleset: string, udp: readonly string[] = destinations, tcp: readonly string[] = tcpDestinations): Record<string, boolean> {
    // Keys: "udp 198.51.100.10:443", "tcp 198.51.100.10:443".
    const dir = mkdtempSync(join(tmpdir(), "burrow-egress-nft-"));
    try {
      writeFileSync(join(dir, "rules.nft"), ruleset);
      const sends = udp.map((d) => {
        const { ip, port } = split(d);
        return `if (echo x > /dev/udp/${ip}/${port}) 2>/dev/null; then echo "udp ${d} sent"; else echo "udp ${d} refused"; fi`;
      });
      // TCP: a refused connect fails at once (the ruleset's reset: "Connection refused"); an
      // allowed one sends its SYN into a veth nobody answers and is still waiting when
      // timeout ends it (124). All in parallel, so the wait is paid once.
      const connects = tcp.map((d) => {
        const { ip, port } = split(d);
        return `(timeout 2 bash -c 'echo x > /dev/tcp/${ip}/${port}' 2>/dev/null; case $? in 124) echo "tcp ${d} sent";; *) echo "tcp ${d} refused";; esac) &`;
      });
      const script = [
        "set -e",
        "ip link add v0 type veth peer name v1",
        "ip addr add 192.0.2.2/24 dev v0",
        "ip -6 addr add 2001:db8:ff::2/64 dev v0 nodad",
        "ip link set v0 up && ip link set v1 up && ip link set lo up",
        "ip route add default via 192.0.2.1",
        "ip -6 route add default via 2001:db8:ff::1",
        `nft -f ${join(dir, "rules.nft")}`,
        "set +e",
        ...sends,
        ...connects,
        "wait",
      ].join("\n");
      const r = spawnSync("unshare", ["-rn", "bash", "-c", script], { encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      return Object.fromEntries(
        r.stdout
          .trim()
          .split("\n")
          .map((l) => l.split(" "))
          .map(([proto, d, what]) => [`${proto} ${d}`, what === "sent"]),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test.skipIf(skip !== null)(
    "enforcing: each UDP send and TCP connect goes out exactly when verdict() allows it; refused connects fail at once",
    () => {
      const policy = compiled(flags, ["192.0.2.1"]);
      const learned = new LearnedAddresses();
      learned.add("203.0.113.5", 0, 300, 0);
      const ruleset = nftRuleset(policy) + nftLearn([{ address: "203.0.113.5", rule: 0, seconds: learnedSeconds(300) }]);
      const kernel = sendAll(ruleset);
      const expected = Object.fromEntries(
        (["udp", "tcp"] as const).flatMap((protocol) =>
          (protocol === "tcp" ? tcpDestinations : destinations).map((d) => [
            `${protocol} ${d}`,
            verdict(policy, { ...split(d), protocol }, (ip) => learned.rulesFor(ip, 1000)).allow,
          ]),
        ),
      );
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
      const tails = ["", ":53", ":443", ":80,443", ":1-100", "/udp", ":443/tcp", ":53/udp"];
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
            const ruleset = nftRuleset(policy) + (allowHost.length ? nftLearn([{ address: "203.0.113.5", rule: 0, seconds: 300 }]) : "");
            const kernel = sendAll(ruleset, sent, []);
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
      const kernel = sendAll(nftRuleset(compiled({ ...flags, logOnly: true }, ["192.0.2.1"])));
      expect(Object.values(kernel).every(Boolean)).toBe(true);
      expect(Object.keys(kernel)).toHaveLength(destinations.length + tcpDestinations.length);
    },
    KERNEL_TEST_MS,
  );
});
