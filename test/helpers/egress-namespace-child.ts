// Runs inside `unshare -rn` (test/helpers/egress-namespace.ts inNamespace):
// reads a NamespaceRun as JSON on stdin, prints a NamespaceResult as JSON.
// Everything here acts on the new, empty namespace this process was started in.
import { ptr } from "bun:ffi";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NFLOG_GROUP, nftLearn, nftRuleset } from "../../src/egress/nft.ts";
import { hasRuleset, learnAddresses, loadRuleset, readLearned } from "../../src/egress/nft-netlink.ts";
import { compilePolicy, type EgressFlags, parseEgressFlags } from "../../src/egress/policy.ts";
import { errno, libc, SysError } from "../../src/sys/libc.ts";
import { AF_INET, AF_INET6, ipv6Bytes } from "../../src/sys/net.ts";
import { openNetfilterSocket } from "../../src/sys/nfnetlink.ts";
import { openNflogSocket, readNflog } from "../../src/sys/nflog.ts";
import type { NamespaceResult, NamespaceRun } from "./egress-namespace.ts";

const run = JSON.parse(await Bun.stdin.text()) as NamespaceRun;
const none: EgressFlags = { allowHost: [], allowCidr: [], denyCidr: [], logOnly: false };
const compiled = (flags: Partial<EgressFlags>) => compilePolicy(parseEgressFlags({ ...none, ...flags })!, { hostAddresses: run.hostAddresses ?? [] });

function sh(script: string): string {
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
  if (r.status !== 0 || r.stderr !== "") throw new Error(`${script}\n${r.stderr}`);
  return r.stdout;
}

sh(
  [
    "set -e",
    "ip link add v0 type veth peer name v1",
    "ip addr add 192.0.2.2/24 dev v0",
    "ip -6 addr add 2001:db8:ff::2/64 dev v0 nodad",
    // lo up: the ruleset's TCP reset is delivered locally, and reaches the socket only so.
    "ip link set v0 up && ip link set v1 up && ip link set lo up",
    "ip route add default via 192.0.2.1",
    "ip -6 route add default via 2001:db8:ff::1",
  ].join("\n"),
);

const out: NamespaceResult = { kernel: {}, listing: "", loadMs: 0 };
const dir = mkdtempSync(join(tmpdir(), "burrow-egress-ns-"));
let nft = -1;
try {
  const policy = compiled(run.flags);
  // Opened before any ruleset, so its first read finds nothing and must return at once.
  const log = run.nflog ? openNflogSocket(NFLOG_GROUP) : -1;
  if (log >= 0) out.logsBeforeLoad = readNflog(log);
  if (run.loader === "netlink") {
    nft = openNetfilterSocket();
    out.hasBefore = hasRuleset(nft);
    if (run.before) loadRuleset(nft, compiled(run.before));
    const start = performance.now();
    loadRuleset(nft, policy);
    out.loadMs = performance.now() - start;
    out.hasAfter = hasRuleset(nft);
    if (run.learn?.length) {
      try {
        learnAddresses(nft, run.learn);
        if (run.relearn) learnAddresses(nft, run.relearn);
      } catch (e) {
        out.learnError = { message: (e as Error).message, ...(e instanceof SysError ? { code: e.code } : {}) };
      }
      out.learned = readLearned(nft, policy);
    }
  } else {
    const learned = (run.learn ?? []).map((e) => ({ address: e.address, rule: Number(/^allow_(\d+)_/.exec(e.set)![1]), seconds: e.seconds }));
    if (run.before) {
      writeFileSync(join(dir, "before.nft"), nftRuleset(compiled(run.before)));
      sh(`nft -f ${join(dir, "before.nft")}`);
    }
    writeFileSync(join(dir, "rules.nft"), nftRuleset(policy) + nftLearn(learned));
    const start = performance.now();
    sh(`nft -f ${join(dir, "rules.nft")}`);
    out.loadMs = performance.now() - start;
  }
  out.listing = sh("nft list table inet burrow_egress");

  const split = (d: string) => ({ ip: d.slice(0, d.lastIndexOf(":")), port: Number(d.slice(d.lastIndexOf(":") + 1)) });
  const sends = (run.udp ?? []).map((d) => {
    const { ip, port } = split(d);
    return `if (echo x > /dev/udp/${ip}/${port}) 2>/dev/null; then echo "udp ${d} sent"; else echo "udp ${d} refused"; fi`;
  });
  // TCP: a refused connect fails at once (the ruleset's reset: "Connection refused"); an allowed
  // one sends its SYN into a veth nobody answers and is still waiting when timeout ends it (124).
  // All in parallel, so the wait is paid once.
  const connects = (run.tcp ?? []).map((d) => {
    const { ip, port } = split(d);
    return `(timeout 2 bash -c 'echo x > /dev/tcp/${ip}/${port}' 2>/dev/null; case $? in 124) echo "tcp ${d} sent";; *) echo "tcp ${d} refused";; esac) &`;
  });
  const probe = sh([...sends, ...connects, "wait"].join("\n"));
  for (const line of probe.trim().split("\n").filter(Boolean)) {
    const [proto, d, what] = line.split(" ");
    out.kernel[`${proto} ${d}`] = what === "sent";
  }
  for (const ip of run.icmp ?? []) out.kernel[`icmp ${ip}`] = sendEcho(ip);

  if (log >= 0) out.logs = readNflog(log);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out));

/** One ICMP (v4 or v6) echo request from a raw socket: true when the kernel sent it, false when the ruleset refused it (EPERM). */
function sendEcho(ip: string): boolean {
  const v6 = ip.includes(":");
  const IPPROTO_ICMP = 1;
  const IPPROTO_ICMPV6 = 58;
  const SOCK_RAW = 3;
  const fd = libc.symbols.socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
  if (fd < 0) throw new Error(`raw socket: errno ${errno()}`);
  try {
    // type, code, checksum, id, sequence; the kernel sums ICMPv6 itself, ICMPv4 is summed here.
    const echo = new Uint8Array([v6 ? 128 : 8, 0, 0, 0, 0x62, 0x75, 0, 1]);
    if (!v6) {
      let sum = 0;
      for (let i = 0; i < echo.length; i += 2) sum += (echo[i]! << 8) | echo[i + 1]!;
      sum = (sum & 0xffff) + (sum >> 16);
      const checksum = ~sum & 0xffff;
      [echo[2], echo[3]] = [checksum >> 8, checksum & 0xff];
    }
    const address = new Uint8Array(v6 ? 28 : 16);
    new DataView(address.buffer).setUint16(0, v6 ? AF_INET6 : AF_INET, true);
    if (v6) address.set(ipv6Bytes(ip), 8);
    else address.set(ip.split(".").map(Number), 4);
    const n = Number(libc.symbols.sendto(fd, ptr(echo), echo.length, 0, ptr(address), address.length));
    if (n === echo.length) return true;
    const e = errno();
    if (e === 1) return false; // EPERM: dropped on the output hook
    throw new Error(`ICMP echo to ${ip}: errno ${e}`);
  } finally {
    libc.symbols.close(fd);
  }
}
