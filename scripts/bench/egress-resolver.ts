// The egress resolver's cost per lookup (docs/egress.md "The resolver":
// "a cached answer under 1 ms more than upstream direct"): N lookups over
// UDP, one at a time, interleaved, each through
//   direct    the test upstream (test/helpers/fake-dns.ts) itself,
//   cached    burrow's resolver (src/egress/service.ts) answering from its cache,
//   uncached  burrow's resolver asking the upstream (a new name each time),
// with the medians, 95th and 99th percentiles in microseconds. The learner is the
// tests' pipe-writing stand-in (test/helpers/egress-fakes.ts): the real one
// (E1's netlink batch into the sandbox's nft set) is not part of this number.
//
//   bun scripts/bench/egress-resolver.ts [N]     (default 1000)
import { TYPE } from "../../src/egress/dns-message.ts";
import { parseEgressFlags } from "../../src/egress/policy.ts";
import { createEgressService } from "../../src/egress/service.ts";
import { bindUdpSocket, listenTcpSocket, pipe, readNB } from "../../src/sys/sockets.ts";
import { a, dnsClient, fakeDns, query } from "../../test/helpers/fake-dns.ts";

const n = Number(process.argv[2] ?? "1000");
const upstream = await fakeDns({
  records: { "cached.allowed.test": [a("cached.allowed.test", "198.51.100.1")] },
  otherwise: (name) => [a(name, "198.51.100.2")],
});
const service = createEgressService(
  { onRefusal: () => {} },
  {
    learnerModule: new URL("../../test/helpers/egress-fakes.ts", import.meta.url).pathname,
    nflogModule: new URL("../../test/helpers/egress-fakes.ts", import.meta.url).pathname,
    upstreamPort: upstream.port,
  },
);
const udp = bindUdpSocket("127.0.0.1", 0);
const tcp = listenTcpSocket("127.0.0.1", 0);
const [learnRead, learnWrite] = pipe();
const [nflogRead] = pipe();
await service.attach({
  id: "bench",
  name: "bench",
  policy: parseEgressFlags({ allowHost: ["*.allowed.test"], allowCidr: [], denyCidr: [], logOnly: false })!,
  context: { hostAddresses: [] },
  upstreams: ["127.0.0.1"],
  fds: { dnsUdp: udp.fd, dnsTcp: tcp.fd, nft: learnWrite, nflog: nflogRead },
});
const drain = new Uint8Array(65536);
const through = await dnsClient(udp.port, () => {
  while (readNB(learnRead, drain) > 0);
});
const direct = await dnsClient(upstream.port);

const times: Record<"direct" | "cached" | "uncached", number[]> = { direct: [], cached: [], uncached: [] };
async function time(kind: keyof typeof times, ask: () => Promise<unknown>, keep: boolean): Promise<void> {
  const t0 = Bun.nanoseconds();
  await ask();
  if (keep) times[kind].push((Bun.nanoseconds() - t0) / 1000);
}
for (let i = -100; i < n; i++) {
  const keep = i >= 0; // the first 100 of each warm up
  await time("direct", () => direct.ask(query("cached.allowed.test", TYPE.A)), keep);
  await time("cached", () => through.ask(query("cached.allowed.test", TYPE.A)), keep);
  await time("uncached", () => through.ask(query(`n${i + 100}.allowed.test`, TYPE.A)), keep);
}
const stat = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const at = (q: number) => Math.round(s[Math.floor(s.length * q)]!);
  return { median: at(0.5), p95: at(0.95), p99: at(0.99) };
};
for (const [kind, xs] of Object.entries(times)) {
  const { median, p95, p99 } = stat(xs);
  console.log(`${kind.padEnd(9)} median ${median} µs  p95 ${p95} µs  p99 ${p99} µs  (${xs.length} lookups)`);
}
through.close();
direct.close();
await service.close();
upstream.close();
