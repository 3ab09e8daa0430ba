// Short connections, for scripts/bench/pasta.sh:
//   bun short-conn.ts serve PORT        accept, write one byte, close (runs in the sandbox)
//   bun short-conn.ts connect PORT N [HOST]
//                                       N sequential connect / read a byte / close to
//                                       HOST:PORT (default 127.0.0.1); prints JSON {medianMs, p95Ms, meanMs}
// One process serves every connection (no fork per connection), so what is
// measured is the path through the published port, not the server.
import { connect, createServer } from "node:net";

const [mode, portText, countText, hostText] = process.argv.slice(2);
const host = hostText ?? "127.0.0.1";
const port = Number(portText);
if (mode === "serve") {
  createServer((s) => s.end("x")).listen(port, "0.0.0.0");
} else if (mode === "connect") {
  const n = Number(countText ?? 500);
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const s = connect(port, host);
      let got = false;
      s.on("data", () => {
        got = true;
      });
      s.on("close", () => (got ? resolve(performance.now() - t0) : reject(new Error("closed without a byte"))));
      s.on("error", reject);
    });
  // The first few open caches (ARP, the forwarder's threads): not counted.
  for (let i = 0; i < 20; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await once());
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  console.log(JSON.stringify({ n, medianMs: at(0.5), p95Ms: at(0.95), meanMs: times.reduce((a, b) => a + b, 0) / n }));
} else {
  console.error("usage: short-conn.ts serve PORT | connect PORT N");
  process.exit(2);
}
