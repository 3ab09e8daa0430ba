// src/daemon/peers.ts and its src/sys/peercred.ts calls on real sockets of
// this process: which fds are control connections, that the listener is not
// one, that a steady connection is looked at once, and the refusal's words.
// A peer of another uid needs root and the built daemon:
// test/integration/peercred.test.ts.
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, openSync, closeSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { ControlPeers, peerRefusal } from "../../src/daemon/peers.ts";
import { geteuid, isListening, openFds, peerCredOfFd, socketCookie, unixSocketPath } from "../../src/sys/peercred.ts";

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

function dir(): string {
  const d = mkdtempSync(`${tmpdir()}/burrow-peers-`);
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Control sockets of this process, by what getsockname says. */
function socketsNamed(path: string): number[] {
  return openFds().filter((fd) => unixSocketPath(fd) === path);
}

test("openFds lists this process's fds; socketCookie tells sockets, one cookie each", () => {
  const file = openSync("/dev/null", "r");
  cleanup.push(() => closeSync(file));
  const fds = openFds();
  expect(fds).toContain(file);
  expect(fds).toContain(0);
  expect(socketCookie(file)).toBeNull();
  expect(socketCookie(1 << 20)).toBeNull();
  const d = dir();
  const a = Bun.listen({ unix: `${d}/a.sock`, socket: { data() {} } });
  const b = Bun.listen({ unix: `${d}/b.sock`, socket: { data() {} } });
  cleanup.push(() => a.stop(true));
  cleanup.push(() => b.stop(true));
  const [fa] = socketsNamed(`${d}/a.sock`);
  const [fb] = socketsNamed(`${d}/b.sock`);
  expect(typeof socketCookie(fa!)).toBe("bigint");
  expect(socketCookie(fa!)).not.toBe(socketCookie(fb!));
  expect(isListening(fa!)).toBe(true);
});

test("in a request: its connection names the listener's bound path even after a rename, and its peer is this uid", async () => {
  const d = dir();
  const bound = `${d}/.control.tmp.sock`;
  const peers = new ControlPeers(geteuid());
  peers.listening(bound);
  const seen: Array<{ foreign: number; connections: Array<{ listening: boolean; uid: number; pid: number }> }> = [];
  const server = Bun.serve({
    unix: bound,
    fetch() {
      const connections = socketsNamed(bound).map((fd) => ({ listening: isListening(fd), ...(isListening(fd) ? { uid: -1, pid: -1 } : peerCredOfFd(fd)) }));
      seen.push({ foreign: peers.foreign().length, connections: connections.map(({ listening, uid, pid }) => ({ listening, uid, pid })) });
      return new Response("ok");
    },
  });
  cleanup.push(() => server.stop(true));
  // What RuntimeOwner does: bind a private name, rename it into place.
  renameSync(bound, `${d}/control.sock`);
  const get = async () => (await fetch("http://burrow/", { unix: `${d}/control.sock`, keepalive: true } as RequestInit)).text();
  expect(await get()).toBe("ok");
  expect(await get()).toBe("ok");
  expect(seen[0]!.foreign).toBe(0);
  // The listener and this request's connection; the connection's peer is us.
  expect(seen[0]!.connections).toContainEqual({ listening: true, uid: -1, pid: -1 });
  expect(seen[0]!.connections).toContainEqual({ listening: false, uid: geteuid(), pid: process.pid });
  expect(seen[1]!.foreign).toBe(0);
  // Each connection is looked at once (the listener too, once): at most
  // the listener and one connection per request, and a further check with
  // nothing new looks at nothing.
  expect(peers.classified).toBeGreaterThanOrEqual(2);
  expect(peers.classified).toBeLessThanOrEqual(1 + seen.length);
  const before = peers.classified;
  expect(peers.foreign()).toEqual([]);
  expect(peers.classified).toBe(before);
});

test("a socket of a path this daemon did not bind is never a control connection", async () => {
  const d = dir();
  const peers = new ControlPeers(geteuid() + 1); // every peer would be foreign
  peers.listening(`${d}/other.sock`);
  let foreign = -1;
  const server = Bun.serve({
    unix: `${d}/control.sock`,
    fetch() {
      foreign = peers.foreign().length;
      return new Response("ok");
    },
  });
  cleanup.push(() => server.stop(true));
  expect(await (await fetch("http://burrow/", { unix: `${d}/control.sock` } as RequestInit)).text()).toBe("ok");
  expect(foreign).toBe(0);
  expect(peers.classified).toBe(0);
});

test("a connection of another uid than the daemon's is cut off (shutdown) and reported until it is gone", async () => {
  const d = dir();
  const bound = `${d}/control.sock`;
  // This process's own uid plays the foreign one: the daemon's is another.
  const peers = new ControlPeers(geteuid() + 1);
  peers.listening(bound);
  const found: number[][] = [];
  const server = Bun.serve({
    unix: bound,
    fetch() {
      found.push(peers.foreign().map((p) => p.pid));
      return new Response("served");
    },
  });
  cleanup.push(() => server.stop(true));
  // The request's connection was shut down before the answer: the client gets nothing.
  const r = await fetch("http://burrow/", { unix: bound } as RequestInit).then(
    (x) => x.text(),
    (e: Error) => `failed: ${e.name}`,
  );
  expect(r).toStartWith("failed: ");
  expect(found).toEqual([[process.pid]]);
  // The listener and the one connection, each looked at once.
  expect(peers.classified).toBe(2);
  // Bun closes the connection once it sees the end: nothing is reported any more.
  await Bun.sleep(50);
  expect(peers.foreign()).toEqual([]);
});

test("the refusal is one line naming the peers and the socket", () => {
  const one = peerRefusal([{ pid: 7, uid: 65534, gid: 65534 }], "/run/x/control.sock");
  expect(one).toBe(
    "refused: another user's process (pid 7, uid 65534 as the daemon sees it) connected to the control socket /run/x/control.sock; it was cut off, and this request is refused with it (the daemon cannot tell which connection sent it); make sure nobody else can reach the socket",
  );
  const many = peerRefusal(
    [1, 2, 3, 4, 5].map((pid) => ({ pid, uid: pid === 5 ? -1 : 1000, gid: 0 })),
    "/s",
  );
  expect(many).toContain("(pid 1, uid 1000; pid 2, uid 1000; pid 3, uid 1000 and 2 more as the daemon sees it)");
  expect(many).not.toContain("\n");
});
