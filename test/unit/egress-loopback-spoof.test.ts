// A forged source over the sandbox's loopback must not open a way out
// (security review of issue 18): an IPv6 socket may bind any address with
// IPV6_FREEBIND, no capability needed, and send to another socket of its
// own over lo; conntrack then took that second socket's "reply" to the
// forged address, out of the sandbox, as established. The ruleset
// (src/egress/nft.ts) lets lo carry only packets from local sources. Run in
// a throwaway `unshare -rn` namespace with the ruleset loaded by `nft -f`
// (egress-nft-netlink.test.ts holds the netlink batch equal to this text);
// python3 makes the sockets. The host's network is never touched.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nftRuleset } from "../../src/egress/nft.ts";
import { compilePolicy, type EgressFlags, parseEgressFlags } from "../../src/egress/policy.ts";
import { kernelSkipReason } from "../helpers/egress-namespace.ts";

const ATTACK = `
import json, socket
IPV6_FREEBIND = 78
out = {}
a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
a.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
a.bind(("2001:db8::8888", 5353))
b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
b.bind(("2001:db8:1::2", 5000))
b.settimeout(0.3)
try:
    a.sendto(b"x", ("2001:db8:1::2", 5000))
    out["forged"] = "sent"
except PermissionError:
    out["forged"] = "EPERM"
try:
    b.recvfrom(10)
    out["received"] = True
except socket.timeout:
    out["received"] = False
try:
    b.sendto(b"y", ("2001:db8::8888", 5353))
    out["escape"] = "sent"
except PermissionError:
    out["escape"] = "EPERM"
# A local source over lo still works: the loopback is not egress.
c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
c.sendto(b"z", ("2001:db8:1::2", 5000))
try:
    b.recvfrom(10)
    out["local"] = True
except socket.timeout:
    out["local"] = False
print(json.dumps(out))
`;

const SETUP = [
  "ip link set lo up",
  "ip link add v0 type veth peer name v1",
  "ip link set v0 up",
  "ip link set v1 up",
  "ip -6 addr add 2001:db8:1::2/64 dev v0 nodad",
  "ip -6 neigh add 2001:db8:1::1 lladdr 02:00:00:00:00:01 dev v0",
  "ip -6 route add default via 2001:db8:1::1 dev v0",
].join(" && ");

function attack(flags: Partial<EgressFlags> | null): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-spoof-"));
  try {
    const script = [SETUP];
    if (flags) {
      const none: EgressFlags = { allowHost: [], allowCidr: [], denyCidr: [], logOnly: false };
      writeFileSync(join(dir, "rules.nft"), nftRuleset(compilePolicy(parseEgressFlags({ ...none, ...flags })!, { hostAddresses: [] })));
      script.push(`nft -f ${join(dir, "rules.nft")}`);
    }
    writeFileSync(join(dir, "attack.py"), ATTACK);
    script.push(`python3 ${join(dir, "attack.py")}`);
    const r = spawnSync("unshare", ["-rn", "sh", "-c", script.join(" && ")], { encoding: "utf8", timeout: 20000 });
    if (r.status !== 0) throw new Error(`the namespace script failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const skip = kernelSkipReason() ?? (spawnSync("python3", ["--version"]).status !== 0 ? "python3 is not installed" : null);
if (skip) console.log(`skipped: the loopback-spoof test needs a real namespace: ${skip}`);

describe("a forged source over the sandbox's loopback", () => {
  test.skipIf(skip !== null)("without a policy the forged packet goes, and so does its 'reply' (what the ruleset must stop)", () => {
    expect(attack(null)).toEqual({ forged: "sent", received: true, escape: "sent", local: true });
  });

  for (const [what, flags] of [
    ["an allow rule", { allowCidr: ["198.51.100.10"] }],
    ["deny rules only", { denyCidr: ["2001:db8::/64"] }],
  ] as const) {
    test.skipIf(skip !== null)(`with ${what}: the forged packet is refused on lo, so no conntrack entry and no way out; local sources still reach lo`, () => {
      expect(attack(flags)).toEqual({ forged: "EPERM", received: false, escape: "EPERM", local: true });
    });
  }
});
