// Test services for the port forwarder, run INSIDE a test network namespace
// with `ip netns exec NS bun test/helpers/netns-servers.ts ADDR BASEPORT`.
// Prints "ready" on stdout once every service listens. Exits when stdin
// closes, so a crashed test run leaves no server behind.
//
//   BASEPORT+0  tcp  echo
//   BASEPORT+1  tcp  HTTP ("hello from the sandbox")
//   BASEPORT+2  tcp  sink: reads until EOF, only then replies "<n> <sha256>\n" and closes
//   BASEPORT+3  udp  echo
//   BASEPORT+4  tcp  echo bound to 127.0.0.1 only (must NOT be reachable through the forwarder)
//   BASEPORT+5  tcp  source: reads "<n>\n", sends n bytes of test/helpers/pattern.ts, closes
import { fill } from "./pattern.ts";

const addr = process.argv[2] ?? "10.0.2.100";
const base = Number(process.argv[3] ?? 7000);

Bun.listen({
  hostname: addr,
  port: base,
  allowHalfOpen: true,
  data: { queue: [] as Uint8Array[] },
  socket: {
    data(s, d) {
      if (s.data.queue.length > 0) {
        s.data.queue.push(d);
        return;
      }
      const n = s.write(d);
      if (n < d.byteLength) {
        s.data.queue.push(d.subarray(Math.max(n, 0)));
        s.pause();
      }
    },
    drain(s) {
      const q = s.data.queue;
      while (q.length > 0) {
        const d = q[0]!;
        const n = s.write(d);
        if (n < d.byteLength) {
          q[0] = d.subarray(Math.max(n, 0));
          return;
        }
        q.shift();
      }
      s.resume();
      if ((s.data as { eof?: boolean }).eof) s.end();
    },
    end(s) {
      (s.data as { eof?: boolean }).eof = true;
      if (s.data.queue.length === 0) s.end();
    },
    open(s) {
      s.data = { queue: [] };
    },
  },
});

Bun.serve({
  hostname: addr,
  port: base + 1,
  fetch: (req) => new Response(`hello from the sandbox: ${req.method} ${new URL(req.url).pathname}\n`, { headers: { "x-served-by": "netns" } }),
});

type Sink = { n: number; hash: Bun.CryptoHasher };
Bun.listen<Sink>({
  hostname: addr,
  port: base + 2,
  allowHalfOpen: true,
  socket: {
    open(s) {
      s.data = { n: 0, hash: new Bun.CryptoHasher("sha256") };
    },
    data(s, d) {
      s.data.n += d.byteLength;
      s.data.hash.update(d);
    },
    end(s) {
      s.end(`${s.data.n} ${s.data.hash.digest("hex")}\n`);
    },
  },
});

const udp = await Bun.udpSocket({
  hostname: addr,
  port: base + 3,
  socket: {
    data(sock, d, port, address) {
      sock.send(d, port, address);
    },
  },
});

Bun.listen({
  hostname: "127.0.0.1",
  port: base + 4,
  socket: {
    data(s, d) {
      s.write(d);
    },
  },
});

type Source = { want: number; sent: number; line: string; buf: Uint8Array };
function pump(s: Bun.Socket<Source>) {
  const st = s.data;
  while (st.sent < st.want) {
    const chunk = fill(st.buf, st.sent, Math.min(st.buf.byteLength, st.want - st.sent));
    const n = s.write(chunk);
    if (n > 0) st.sent += n;
    if (n < chunk.byteLength) return;
  }
  s.end();
}
Bun.listen<Source>({
  hostname: addr,
  port: base + 5,
  socket: {
    open(s) {
      s.data = { want: -1, sent: 0, line: "", buf: new Uint8Array(1 << 20) };
    },
    data(s, d) {
      if (s.data.want >= 0) return;
      s.data.line += new TextDecoder().decode(d);
      const nl = s.data.line.indexOf("\n");
      if (nl < 0) return;
      s.data.want = Number(s.data.line.slice(0, nl));
      pump(s);
    },
    drain(s) {
      if (s.data.want >= 0) pump(s);
    },
  },
});

void udp;
console.log("ready");
// Exit with the test run: stdin is a pipe from the test process.
(async () => {
  for await (const _ of Bun.stdin.stream()) {
    // ignore
  }
  process.exit(0);
})();
