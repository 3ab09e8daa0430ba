// Talking to a unix socket as a given user. The daemon serves only
// connections whose peer (SO_PEERCRED) is its own uid (src/daemon/peers.ts),
// so the test process, root, cannot talk to a rootless daemon directly:
// there it is an unmapped uid like any other user's. Small clients run as
// Bun programs: the compiled burrow binary is Bun itself with BUN_BE_BUN=1,
// so the test user and uid 65534 need no Bun of their own.
import { burrowBin } from "./env.ts";
import type { BurrowContext } from "./context.ts";
import { until } from "./until.ts";

/** argv that runs `code` (JavaScript) with `args` as process.argv.slice(2), under the env BUN_BE_BUN=1. */
export function bunEval(code: string, args: string[] = []): string[] {
  return [burrowBin(), "-e", code, ...args];
}

const RELAY = `
const net = require("node:net");
const [listen, target] = process.argv.slice(-2);
net
  .createServer((c) => {
    const up = net.connect(target);
    c.pipe(up);
    up.pipe(c);
    c.on("error", () => up.destroy());
    up.on("error", () => c.destroy());
  })
  .listen(listen, () => console.log("ready"));
`;

let relays = 0;

/**
 * Starts, as the context's own identity (the test user when rootless), a
 * relay from a new socket in the context's dirs to `target`, and returns its
 * path: what connects there reaches `target` as the context's user.
 * dispose() ends it.
 */
export async function relayAs(t: BurrowContext, target: string): Promise<string> {
  const path = `${t.dirs.root}/relay-${++relays}.sock`;
  const p = t.spawn(bunEval(RELAY, [path, target]), { env: { BUN_BE_BUN: "1" } });
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  await until(
    async () => {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the relay exited: ${await new Response(p.stderr as ReadableStream).text()}`);
      return new TextDecoder().decode(value).includes("ready");
    },
    10_000,
    "the relay to listen",
  );
  reader.releaseLock();
  return path;
}

/**
 * A Bun program for a peer: connects to the unix socket argv[-2], writes
 * argv[-1] (JSON text, "" for nothing), prints "connected", and when the
 * other side ends the connection prints "closed N" (N = bytes it received)
 * and exits 0; still open after 10 s it prints "open N" and exits 1.
 */
export const PEER = `
const [path, send] = process.argv.slice(-2);
let got = 0;
await Bun.connect({
  unix: path,
  socket: {
    open(s) {
      const text = JSON.parse(send);
      if (text) s.write(text);
      console.log("connected");
    },
    data(_s, d) {
      got += d.byteLength;
    },
    close() {
      console.log("closed " + got);
      process.exit(0);
    },
  },
});
setTimeout(() => {
  console.log("open " + got);
  process.exit(1);
}, 10_000);
`;

/** HTTP/1.1 requests to the control socket, back to back in one string (pipelined). */
export function pipelined(requests: Array<{ op: string; body: unknown }>): string {
  return requests
    .map(({ op, body }) => {
      const text = JSON.stringify(body);
      return `POST /${op} HTTP/1.1\r\nHost: burrow\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;
    })
    .join("");
}
