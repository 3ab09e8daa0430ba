// A client for the conformance suites, run where the published ports are:
// the test process's own netns rootless, the test netns rootful (through
// BurrowContext.run). Prints what it got on stdout; exit 1 with the reason
// on stderr when nothing came back in time.
//
//   bun net-client.ts http HOST PORT          GET /, prints the body
//   bun net-client.ts udp HOST PORT MSG       one datagram, prints the reply
//   bun net-client.ts halfclose HOST PORT MSG sends MSG, shuts its write side, prints the reply
import { createSocket } from "node:dgram";
import { connect } from "node:net";

const [mode, host = "127.0.0.1", portText = "0", msg = "ping"] = process.argv.slice(2);
const port = Number(portText);
const fail = (why: string) => {
  process.stderr.write(`${mode} ${host}:${port}: ${why}\n`);
  process.exit(1);
};
const timer = setTimeout(() => fail("no reply within 3 s"), 3000);
const done = (out: string) => {
  clearTimeout(timer);
  process.stdout.write(out);
  process.exit(0);
};

if (mode === "http") {
  fetch(`http://${host.includes(":") ? `[${host}]` : host}:${port}/`)
    .then((r) => r.text())
    .then(done, (e) => fail(String(e)));
} else if (mode === "udp") {
  const s = createSocket(host.includes(":") ? "udp6" : "udp4");
  s.on("message", (m) => done(m.toString()));
  s.on("error", (e) => fail(String(e)));
  s.send(msg, port, host);
} else if (mode === "halfclose") {
  const chunks: Buffer[] = [];
  const s = connect({ host, port, allowHalfOpen: true }, () => {
    s.write(msg);
    s.end();
  });
  s.on("data", (d) => chunks.push(Buffer.from(d)));
  s.on("end", () => done(Buffer.concat(chunks).toString()));
  s.on("error", (e) => fail(String(e)));
} else {
  fail(`unknown mode (http, udp, halfclose)`);
}
