// What the daemon's per-request peer check (src/daemon/peers.ts) costs, by
// the number of fds the daemon has open: ControlPeers.foreign() timed
// inside a request's handler, as the daemon calls it, with the listener and
// the request's connection already seen: the steady state, one getdents64
// of /proc/self/fd and one getsockopt per fd. A connection never seen
// before costs getsockname, SO_ACCEPTCONN and SO_PEERCRED once more.
//
//   node_modules/.bin/bun scripts/bench/peer-check.ts [FDS...]   (default 30 300 1000)
//
// Each fd count: a third sockets (TCP listeners on 127.0.0.1, like the
// builtin forwarder's published ports), the rest /dev/null. Prints one line
// per count; no root needed.
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { ControlPeers } from "../../src/daemon/peers.ts";
import { geteuid, openFds } from "../../src/sys/peercred.ts";

const counts = process.argv.slice(2).map(Number);
const dir = mkdtempSync(`${tmpdir()}/burrow-peer-bench-`);
const sock = `${dir}/control.sock`;
const peers = new ControlPeers(geteuid());
peers.listening(sock);
let measure: () => void = () => {};
const server = Bun.serve({
  unix: sock,
  fetch() {
    measure();
    return new Response("ok");
  },
});
const opened: number[] = [];
const listeners: Array<{ stop(all?: boolean): void }> = [];
try {
  for (const want of counts.length ? counts : [30, 300, 1000]) {
    while (openFds().length < want) {
      if (listeners.length < want / 3) listeners.push(Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }));
      else opened.push(openSync("/dev/null", "r"));
    }
    let steady = 0;
    let fds = 0;
    measure = () => {
      fds = openFds().length;
      peers.foreign();
      const n = 2000;
      const t1 = performance.now();
      for (let i = 0; i < n; i++) peers.foreign();
      steady = ((performance.now() - t1) * 1000) / n;
    };
    const res = await fetch("http://burrow/", { unix: sock } as RequestInit);
    await res.text();
    console.log(`${fds} fds (${listeners.length + 2} sockets): ${steady.toFixed(1)} µs a request`);
  }
} finally {
  server.stop(true);
  for (const l of listeners) l.stop(true);
  for (const fd of opened) closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
}
