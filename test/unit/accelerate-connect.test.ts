// One trapped connect answered by src/accelerate/connect.ts against the real
// kernel: python3 runs under the --accelerate filter in an empty network
// namespace of its own (`unshare -rn`: only a loopback that is down), so any
// connection it makes can only have gone through the twin socket made here.
import { beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, statSync } from "node:fs";
import { acceleratedConnect, parseInetSockaddr, type Verdict } from "../../src/accelerate/connect.ts";
import { sockaddrOf } from "../../src/sys/netio.ts";
import {
  closeOnExec,
  copyTrappedFd,
  kernelVersion,
  netnsInodeOf,
  O_CLOEXEC,
  processFdFlags,
  receiveNotification,
  syncWakeUp,
  waitNotification,
} from "../../src/sys/seccomp.ts";
import { filterTestSetup, notifSizes, pythonUnderFilter } from "../helpers/accelerate.ts";
import { intOption, socketShape, tcpTwin, waitWritable } from "../../src/sys/socket-twin.ts";

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
  let helper = "";
  let why = "";
  beforeAll(async () => {
    ({ helper, why } = await filterTestSetup());
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

  test("blocking connect to the host's loopback: answered at once (the handshake ended inside connect()), no round through epoll; the process talks to the host's server", async () => {
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
      expect(out).toEqual({ answered: "host", errno: 0 });
      expect(await child.exited).toBe(0);
      expect((await new Response(child.stdout).text()).trim()).toBe(`pong:ping ${srv.port}`);
      expect(srv.peers).toEqual(["127.0.0.1"]);
      closeSync(listener);
    } finally {
      srv.stop();
    }
  });

  test("blocking connect whose handshake has not ended (the server's accept queue is full): pending, installed once the twin is writable", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    // listen(0) holds one connection unaccepted; a SYN beyond it is dropped until the server accepts (the client retries after ~1 s).
    const full = Bun.spawn(
      [
        "/usr/bin/python3",
        "-c",
        `import socket,sys\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.readline()\nfor i in range(2):\n  c,a=s.accept(); c.sendall(b"hi"); c.close()\n`,
      ],
      { stdin: "pipe", stdout: "pipe" },
    );
    const reader = (full.stdout as ReadableStream<Uint8Array>).getReader();
    const port = Number(new TextDecoder().decode((await reader.read()).value).trim());
    const first = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      const { child, listener } = sandboxed(`import socket\ns=socket.socket()\ns.connect(("127.0.0.1",${port}))\nprint(s.recv(10).decode())\n`);
      expect(waitNotification(listener, 10_000)).toBe("ready");
      const out = acceleratedConnect(listener, receiveNotification(listener, sizes()), (d) => ({ host: d }));
      if (!("pending" in out)) throw new Error(`expected a pending connect, got ${JSON.stringify(out)}`);
      expect(waitWritable(out.pending.fd, 0)).toBe(false);
      full.stdin.write("accept\n");
      await full.stdin.end();
      expect(waitWritable(out.pending.fd, 10_000)).toBe(true);
      expect(out.pending.finish()).toBe(0);
      expect(await child.exited).toBe(0);
      expect((await new Response(child.stdout).text()).trim()).toBe("hi");
      closeSync(listener);
    } finally {
      first.end();
      full.kill();
      await full.exited;
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
    // Port 1 on the host's loopback: nothing listens there; the refusal has come by the time connect() returns.
    const out = acceleratedConnect(listener, receiveNotification(listener, notifSizes), (d) => ({ host: d }));
    expect(out).toEqual({ answered: "host", errno: 111 });
    expect(await child.exited).toBe(0);
    // The empty namespace's loopback is down: its own connect cannot reach anything.
    expect((await new Response(child.stdout).text()).trim().split("\n")).toEqual(["ENETUNREACH", "ECONNREFUSED"]);
    closeSync(listener);
  });

  test("synchronous wake-ups are really set on a listener (Linux 6.6+; the flag is the ioctl's argument itself, not a pointer to it)", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const v = kernelVersion();
    if (!v || v[0] < 6 || (v[0] === 6 && v[1] < 6)) return console.warn("skipped: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP needs Linux 6.6");
    const { child, listener } = sandboxed("pass");
    try {
      expect(syncWakeUp(listener)).toBe(true);
    } finally {
      closeSync(listener);
      await child.exited;
    }
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
      expect(out).toEqual({ answered: "host", errno: 0, wouldRefuse });
      expect(await child.exited).toBe(0);
      // The namespace's loopback is down: the UDP connect, run inside, cannot route anywhere.
      expect((await new Response(child.stdout).text()).trim().split("\n")).toEqual(["ECONNREFUSED", "ENETUNREACH", "pong:logged"]);
      closeSync(listener);
    } finally {
      srv.stop();
    }
  });
});

describe("the supervisor's per-call look at a trapped process (kept pidfds and fdinfo dirs, buffers of its own)", () => {
  const python = (code: string) => Bun.spawn(["/usr/bin/python3", "-c", code], { stdin: "pipe", stdout: "pipe" });
  /** python3 holding a TCP socket with TCP_NODELAY and a keepalive idle time set, and a close-on-exec-less one: prints "FD FD2". */
  const HOLDER = `import socket,os,sys
a=socket.socket(); a.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1); a.setsockopt(socket.IPPROTO_TCP,socket.TCP_KEEPIDLE,77)
b=socket.socket(); os.set_inheritable(b.fileno(), True)
print(a.fileno(), b.fileno(), flush=True); sys.stdin.readline()
`;
  async function holder() {
    const p = python(HOLDER);
    const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
    const [a, b] = new TextDecoder()
      .decode((await reader.read()).value)
      .trim()
      .split(" ")
      .map(Number) as [number, number];
    return { p, a, b };
  }

  test("netns inode from the link, close-on-exec from fdinfo, fd copies: right for a live process, again from the kept handles, and fresh ones after it exits", async () => {
    if (!existsSync("/usr/bin/python3")) return console.warn("skipped: no /usr/bin/python3");
    expect(netnsInodeOf(process.pid)).toBe(statSync("/proc/self/ns/net").ino);
    expect(netnsInodeOf(2 ** 22 + 1)).toBeNull(); // above pid_max: no such process
    const first = await holder();
    for (let i = 0; i < 2; i++) {
      // python3 makes its sockets close-on-exec; os.set_inheritable cleared it on the second.
      expect(closeOnExec(processFdFlags(first.p.pid, first.a))).toBe(true);
      expect(closeOnExec(processFdFlags(first.p.pid, first.b))).toBe(false);
      const copy = copyTrappedFd(first.p.pid, first.a);
      const shape = socketShape(copy);
      expect(shape).toMatchObject({ family: 2, type: 1, protocol: 6, connected: false, boundPort: 0 });
      // Only the options that differ from a fresh socket's are set on the twin, and the twin has them.
      const twin = tcpTwin(copy, shape);
      expect([intOption(twin, 6, 1), intOption(twin, 6, 4)]).toEqual([1, 77]); // TCP_NODELAY, TCP_KEEPIDLE
      expect(intOption(twin, 1, 9)).toBe(0); // SO_KEEPALIVE: not set by the process, the fresh default
      expect(closeOnExec(processFdFlags(process.pid, twin))).toBe(true);
      closeSync(twin);
      closeSync(copy);
    }
    first.p.stdin.write("\n");
    await first.p.stdin.end();
    await first.p.exited;
    expect(() => copyTrappedFd(first.p.pid, first.a)).toThrow();
    expect(closeOnExec(processFdFlags(first.p.pid, first.a))).toBe(false);
    // Another process (perhaps with a reused pid one day): fresh handles, right answers.
    const second = await holder();
    expect(closeOnExec(processFdFlags(second.p.pid, second.b))).toBe(false);
    const copy = copyTrappedFd(second.p.pid, second.a);
    expect(socketShape(copy).family).toBe(2);
    closeSync(copy);
    second.p.kill();
    await second.p.exited;
  });

  test("fdinfo flags from a kept file follow the process's fd: its flags changed, the number reused, closed; socketShape with those flags", async () => {
    if (!existsSync("/usr/bin/python3")) return console.warn("skipped: no /usr/bin/python3");
    // Runs each stdin line as python and answers "ok"; starts with one unbound TCP socket, close-on-exec, blocking.
    const p = python(`import socket,os,sys,fcntl
a=socket.socket(); print(a.fileno(), flush=True)
for line in sys.stdin:
    exec(line); print("ok", flush=True)
`);
    const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
    const out = new TextDecoder();
    let pending = "";
    /** The next whole line python printed (a read may bring part of one, or two). */
    const line = async (): Promise<string> => {
      while (!pending.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`python3 ended: ${JSON.stringify(pending)}`);
        pending += out.decode(value, { stream: true });
      }
      const nl = pending.indexOf("\n");
      const first = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      return first;
    };
    const fd = Number(await line());
    const run = async (code: string) => {
      p.stdin.write(`${code}\n`);
      await p.stdin.flush();
      expect(await line()).toBe("ok");
    };
    const O_NONBLOCK = 0o4000;
    try {
      const flags = processFdFlags(p.pid, fd);
      expect(flags & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC);
      // Read again through the kept file: the same fd, its flags changed since.
      await run("a.setblocking(False); os.set_inheritable(a.fileno(), True)");
      expect(processFdFlags(p.pid, fd) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_NONBLOCK);
      const copy = copyTrappedFd(p.pid, fd);
      expect(socketShape(copy, processFdFlags(p.pid, fd))).toMatchObject({ nonblocking: true, connected: false, boundPort: 0, family: 2 });
      closeSync(copy);
      // The number closed: unreadable; then reused by another file: that file's flags.
      await run("a.close()");
      expect(processFdFlags(p.pid, fd)).toBe(-1);
      expect(closeOnExec(processFdFlags(p.pid, fd))).toBe(false);
      await run(`b=socket.socket(socket.AF_INET6); assert b.fileno() == ${fd}`);
      expect(processFdFlags(p.pid, fd) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC);
      // A bound socket is asked getpeername: a listening one is not connected, a connected one is.
      await run("b.bind(('::1', 0)); b.listen(1); c=socket.create_connection(('::1', b.getsockname()[1]))");
      const listening = copyTrappedFd(p.pid, fd);
      expect(socketShape(listening, processFdFlags(p.pid, fd))).toMatchObject({ family: 10, connected: false });
      expect(socketShape(listening).boundPort).toBeGreaterThan(0);
      closeSync(listening);
      await run("d=b.accept()[0]; os.dup2(d.fileno(), b.fileno())");
      const connected = copyTrappedFd(p.pid, fd);
      expect(socketShape(connected, processFdFlags(p.pid, fd)).connected).toBe(true);
      closeSync(connected);
    } finally {
      p.kill();
      await p.exited;
    }
    // The process is gone: its kept file answers nothing.
    expect(processFdFlags(p.pid, fd)).toBe(-1);
  });
});
