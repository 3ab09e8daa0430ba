// How long loading a sandbox's egress ruleset takes: the netlink batch
// (src/egress/nft-netlink.ts loadRuleset) next to a spawn of `nft -f` of the
// same text (src/egress/nft.ts nftRuleset), for a 10-rule policy.
//
//   unshare -rn node_modules/.bin/bun scripts/bench/egress-nft-load.ts [RUNS]
//
// Two cases, RUNS each (default 50), interleaved so machine load hits both:
// - fresh: each load in a new network namespace (unshare(CLONE_NEWNET) of
//   this thread; nft is spawned from it and inherits it), no table there
//   yet: what a sandbox's start pays, conntrack's first use included;
// - replace: loads into one namespace that has the table already.
// Prints medians and 90th percentiles in ms. Never touches the host's network.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nftRuleset } from "../../src/egress/nft.ts";
import { loadRuleset } from "../../src/egress/nft-netlink.ts";
import { compilePolicy, parseEgressFlags } from "../../src/egress/policy.ts";
import { openNetfilterSocket } from "../../src/sys/nfnetlink.ts";
import { CLONE, close, unshare } from "../../src/sys/ns.ts";

const runs = Number(process.argv[2] ?? 50);
// Ten rules, as the start-time goal says: three names, four ranges, three denials.
const policy = compilePolicy(
  parseEgressFlags({
    allowHost: ["pypi.org", "*.pythonhosted.org", "registry.npmjs.org:443/tcp"],
    allowCidr: ["10.1.0.0/16:443/tcp", "198.51.100.0/24:80,443", "host:8080/tcp", "[2001:db8::53]:53/udp"],
    denyCidr: ["private", "192.0.2.0/24/udp", "203.0.113.7"],
    logOnly: false,
  })!,
  { hostAddresses: ["192.0.2.1", "2001:db8:ff::1"] },
);
const dir = mkdtempSync(join(tmpdir(), "burrow-bench-nft-"));
const file = join(dir, "rules.nft");
writeFileSync(file, nftRuleset(policy));

const time = (fn: () => void) => {
  const start = performance.now();
  fn();
  return performance.now() - start;
};
const nft = () => {
  const r = spawnSync("nft", ["-f", file]);
  if (r.status !== 0) throw new Error(`nft -f: ${r.stderr}`);
};

// Warm up both paths (JIT, the libc groups, nft's page cache) once, outside the numbers.
let fd = openNetfilterSocket();
loadRuleset(fd, policy);
nft();

const results: Record<string, number[]> = { "fresh netlink": [], "fresh nft -f": [], "replace netlink": [], "replace nft -f": [] };
for (let i = 0; i < runs; i++) {
  close(fd);
  unshare(CLONE.NEWNET);
  fd = openNetfilterSocket();
  results["fresh netlink"]!.push(time(() => loadRuleset(fd, policy)));
  results["replace netlink"]!.push(time(() => loadRuleset(fd, policy)));
  close(fd);
  unshare(CLONE.NEWNET);
  fd = openNetfilterSocket();
  results["fresh nft -f"]!.push(time(nft));
  results["replace nft -f"]!.push(time(nft));
}
close(fd);
rmSync(dir, { recursive: true, force: true });

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
for (const [name, xs] of Object.entries(results))
  console.log(`${name.padEnd(16)} median ${quantile(xs, 0.5).toFixed(2)} ms  p90 ${quantile(xs, 0.9).toFixed(2)} ms  (${xs.length} runs)`);
