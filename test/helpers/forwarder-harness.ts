// Runs the builtin port forwarder alone, for tests and benchmarks that need it
// in its own process (e.g. compiled with `bun build --compile` next to
// src/ports/connector-worker.ts, the way dist/burrow embeds it).
//
//   forwarder-harness NETNS_PATH PROTO:HOSTIP:HOSTPORT:TARGETIP:TARGETPORT...
//
// IPv6 addresses go in brackets: tcp:[::1]:0:10.0.2.100:80. Prints one JSON
// line {"ports":[actual host ports]} (or {"error": message}) on stdout, then
// answers every "stats" line on stdin with a JSON line; exits at stdin EOF.
import { createForwarder, type ForwardSpec } from "../../src/ports/forwarder.ts";

function parseMapping(netnsPath: string, s: string): ForwardSpec {
  const m = /^(tcp|udp):(\[[^\]]*\]|[^:]*):(\d+):(\[[^\]]*\]|[^:]+):(\d+)$/.exec(s);
  if (!m) throw new Error(`bad mapping ${s}`);
  const unbracket = (a: string) => a.replace(/^\[|\]$/g, "");
  return {
    protocol: m[1] as "tcp" | "udp",
    hostIp: unbracket(m[2]!),
    hostPort: Number(m[3]),
    netnsPath,
    targetIp: unbracket(m[4]!),
    targetPort: Number(m[5]),
  };
}

const [netnsPath, ...mappings] = process.argv.slice(2);
const fwd = createForwarder();
try {
  const ports: number[] = [];
  for (const m of mappings) ports.push((await fwd.add(parseMapping(netnsPath!, m))).hostPort);
  console.log(JSON.stringify({ ports }));
} catch (e) {
  console.log(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
  process.exit(1);
}

const decoder = new TextDecoder();
let pending = "";
for await (const chunk of Bun.stdin.stream()) {
  pending += decoder.decode(chunk, { stream: true });
  let nl: number;
  while ((nl = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, nl).trim();
    pending = pending.slice(nl + 1);
    if (line === "stats") console.log(JSON.stringify(fwd.stats()));
  }
}
fwd.close();
process.exit(0);
