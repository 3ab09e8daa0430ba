// One trapped connect answered by src/accelerate/connect.ts against the real
// kernel: python3 runs under the --accelerate filter in an empty network
// namespace of its own (`unshare -rn`: only a loopback that is down), so any
// connection it makes can only have gone through the twin socket made here.
import { beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync } from "node:fs";
import { buildEnterHelper } from "../../scripts/build.ts";
import { acceleratedConnect, parseInetSockaddr, type Verdict } from "../../src/accelerate/connect.ts";
import { sockaddrOf } from "../../src/sys/netio.ts";
import { accelerationSupport, receiveNotification, waitNotification } from "../../src/sys/seccomp.ts";
import { notifSizes, pythonUnderFilter } from "../helpers/accelerate.ts";
import { waitWritable } from "../../src/sys/socket-twin.ts";
import { repoRoot } from "../helpers/env.ts";

describe("parseInetSockaddr", () => {
  test("IPv4, IPv6 (compressed), IPv4-mapped IPv6, and nothing else", () => {
    expect(parseInetSockaddr(sockaddrOf("198.51.100.7", 443).buf)).toEqual({ ip: "198.51.100.7", port: 443 });
    expect(parseInetSockaddr(sockaddrOf("2001:db8::1", 80).buf)).toEqual({ ip: "2001:db8::1", port: 80 });
    expect(parseInetSockaddr(sockaddrOf("::1", 8080).buf)).toEqual({ ip: "::1", port: 8080 });
    expect(parseInetSockaddr(sockaddrOf("::ffff:127.0.0.1", 9).buf)).toEqual({ ip: "127.0.0.1", port: 9 });
    const unix = new Uint8Array(16);
    unix[0] = 1;
    expect(parseInetSockaddr(unix)).toBeNull();
    // An AF_INET family with an IPv6 length (a lying process) is nothing.
    const lying = new Uint8Array(28);
    lying[0] = 2;
    expect(parseInetSockaddr(lying)).toBeNull();
  });
});

describe("a trapped connect through a host twin", () => {
  let helper = `${repoRoot}/dist/burrow-enter-helper`;
  let why = "";
  beforeAll(async () => {
    if (!existsSync(helper)) helper = (await buildEnterHelper()) ?? "";
    if (!helper) why = "no musl-gcc to build the enter helper (Debian: musl-tools)";
    const s = accelerationSupport();
    if (!why && !s.ok) why = `this machine cannot accelerate: needs ${s.missing}`;
    if (!why && !existsSync("/usr/bin/python3")) why = "no /usr/bin/python3 (Debian: python3, scripts/setup.sh)";
    if (!why && Bun.spawnSync(["unshare", "-rn", "true"]).exitCode !== 0) why = "unshare -rn fails here (user namespaces disabled?)";
  });

  const sandboxed = (code: string) => pythonUnderFilter(helper, code, ["unshare", "-rn"]);

  async function server() {
    const peers: string[] = [];
    const s = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(sock) {
          peers.push(sock.remoteAddress);
        },
        data(sock, d) {
          sock.write(`pong:${d.toString()}`);
        },
      },
    });
    return { port: s.port, peers, stop: () => s.stop(true) };
  }

  const sizes = notifSizes;

  const toHost =
    (ip: string, port: number): ((d: { ip: string; port: number }) => Verdict) =>
    () => ({ host: { ip, port } });

  test("blocking connect: answered when the host handshake ends, the process talks to the host's server", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const srv = await server();
    try {
      const { child, listener } = sandboxed(
        `import socket\ns=socket.socket()\ns.connect(("127.0.0.1",${srv.port}))\ns.sendall(b"ping")\nprint(s.recv(100).decode(), s.getpeername()[1])\n`,
      );
      expect(waitNotification(listener, 10_000)).toBe("ready");
      const n = receiveNotification(listener, sizes());
      const seen: string[] = [];
      const out = acceleratedConnect(listener, n, (dest) => {
        seen.push(`${dest.ip}:${dest.port}`);
        return toHost(dest.ip, dest.port)(dest);
      });
      expect(seen).toEqual([`127.0.0.1:${srv.port}`]);
      if (!("pending" in out)) throw new Error(`expected a pending connect, got ${JSON.stringify(out)}`);
      expect(waitWritable(out.pending.fd, 5_000)).toBe(true);
      expect(out.pending.finish()).toBe(0);
      expect(await child.exited).toBe(0);
      expect((await new Response(child.stdout).text()).trim()).toBe(`pong:ping ${srv.port}`);
      expect(srv.peers).toEqual(["127.0.0.1"]);
      closeSync(listener);
    } finally {
      srv.stop();
    }
  });

  test("non-blocking connect: EINPROGRESS at once, then the twin is the process's socket", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const srv = await server();
    try {
      const { child, listener } = sandboxed(
        `import socket,select,errno\ns=socket.socket()\ns.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)\ns.setblocking(False)\nr=s.connect_ex(("127.0.0.1",${srv.port}))\nselect.select([],[s],[],5)\ns.setblocking(True)\ns.sendall(b"nb")\nprint(errno.errorcode.get(r,r), s.recv(100).decode(), s.getsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY))\n`,
      );
      expect(waitNotification(listener, 10_000)).toBe("ready");
      const n = receiveNotification(listener, sizes());
      const out = acceleratedConnect(listener, n, (d) => ({ host: d }));
      expect(out).toEqual({ answered: "host", errno: 115 });
      expect(await child.exited).toBe(0);
      // TCP_NODELAY, set before connect, was copied onto the twin.
      expect((await new Response(child.stdout).text()).trim()).toBe("EINPROGRESS pong:nb 1");
      closeSync(listener);
    } finally {
      srv.stop();
    }
  });

  test("a CONTINUE verdict runs the call in the process's own namespace; a refused host connect is the process's answer", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const code = `import socket,errno\nfor i in range(2):\n  s=socket.socket()\n  try:\n    s.connect(("127.0.0.1",1))\n    print("connected")\n  except OSError as e:\n    print(errno.errorcode[e.errno])\n`;
    const { child, listener } = sandboxed(code);
    const notifSizes = sizes();
    expect(waitNotification(listener, 10_000)).toBe("ready");
    expect(acceleratedConnect(listener, receiveNotification(listener, notifSizes), () => ({ continue: "inside" }))).toEqual({
      answered: "continue",
      reason: "inside",
    });
    expect(waitNotification(listener, 10_000)).toBe("ready");
    // Port 1 on the host's loopback: nothing listens there; the refusal comes when the handshake ends.
    const out = acceleratedConnect(listener, receiveNotification(listener, notifSizes), (d) => ({ host: d }));
    if (!("pending" in out)) throw new Error(`expected a pending connect, got ${JSON.stringify(out)}`);
    expect(waitWritable(out.pending.fd, 5_000)).toBe(true);
    expect(out.pending.finish()).toBe(111);
    expect(await child.exited).toBe(0);
    // The empty namespace's loopback is down: its own connect cannot reach anything.
    expect((await new Response(child.stdout).text()).trim().split("\n")).toEqual(["ENETUNREACH", "ECONNREFUSED"]);
    closeSync(listener);
  });

  test("a reused notification buffer must hold the kernel's struct seccomp_notif (checked before the ioctl)", () => {
    if (why) return console.warn(`skipped: ${why}`);
    expect(() => receiveNotification(-1, sizes(), new Uint8Array(8))).toThrow("a notification buffer of 8 bytes");
  });

  test("an egress refusal: a TCP connect is answered ECONNREFUSED with no host socket; a UDP connect runs inside (the ruleset's); log-only is a host socket with the refusal", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const srv = await server();
    try {
      const code = `import socket,errno
def attempt(kind, port):
  s=socket.socket(socket.AF_INET, kind)
  try:
    s.connect(("198.51.100.7",port))
    print("connected")
  except OSError as e:
    print(errno.errorcode[e.errno])
attempt(socket.SOCK_STREAM, 80)
attempt(socket.SOCK_DGRAM, 53)
s=socket.socket()
s.connect(("127.0.0.1",${srv.port}))
s.sendall(b"logged")
print(s.recv(100).decode())
`;
      const { child, listener } = sandboxed(code);
      const refusal = { destination: "198.51.100.7", port: 80, protocol: "tcp", rule: null, reason: "default deny" };
      // One buffer for every notification, as the Worker receives them.
      const buf = new Uint8Array(Math.max(sizes().notif, 80));
      expect(waitNotification(listener, 10_000)).toBe("ready");
      expect(acceleratedConnect(listener, receiveNotification(listener, sizes(), buf), () => ({ refuse: refusal }))).toEqual({ answered: "refused", refusal });
      expect(waitNotification(listener, 10_000)).toBe("ready");
      expect(acceleratedConnect(listener, receiveNotification(listener, sizes(), buf), (d) => ({ refuse: { ...refusal, port: d.port } }))).toEqual({
        answered: "continue",
        reason: "not TCP",
      });
      expect(waitNotification(listener, 10_000)).toBe("ready");
      const wouldRefuse = { ...refusal, destination: "127.0.0.1", port: srv.port };
      const out = acceleratedConnect(listener, receiveNotification(listener, sizes(), buf), (d) => ({ host: d, wouldRefuse }));
      if (!("pending" in out)) throw new Error(`expected a pending connect, got ${JSON.stringify(out)}`);
      expect(out.wouldRefuse).toEqual(wouldRefuse);
      expect(waitWritable(out.pending.fd, 5_000)).toBe(true);
      expect(out.pending.finish()).toBe(0);
      expect(await child.exited).toBe(0);
      // The namespace's loopback is down: the UDP connect, run inside, cannot route anywhere.
      expect((await new Response(child.stdout).text()).trim().split("\n")).toEqual(["ECONNREFUSED", "ENETUNREACH", "pong:logged"]);
      closeSync(listener);
    } finally {
      srv.stop();
    }
  });
});
