// --accelerate (issue 16), end to end from the built binary: a sandboxed
// command's TCP connects out of the sandbox become host sockets, within
// exactly what the sandbox could reach without the flag. The proof that a
// connection went through a host socket: the client's own address
// (getsockname) is the host side's, 127.0.0.1, not the sandbox's 10.0.2.100.
// The only server the sandboxes reach is on the loopback of the daemon's
// network namespace (the host's rootless, a test netns rootful).
import { afterEach, beforeEach, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { burrowContext, type BurrowContext, daemonPids } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { describeWhen, firstMissing } from "../helpers/requirements.ts";
import { until } from "../helpers/until.ts";
import { accelerationSupport } from "../../src/sys/seccomp.ts";

const why = firstMissing(integrationUnavailable(), () => {
  const s = accelerationSupport();
  return s.ok ? null : `this machine cannot accelerate: needs ${s.missing}`;
});
if (why) console.warn(`skipping the --accelerate tests: ${why}`);

// Host ports below the kernel's ephemeral range (32768 and up here): a port
// in that range can be the source port of any connection made meanwhile
// (the 200 connections of the inbound test leave theirs in TIME_WAIT), and a
// bind there then fails with EADDRINUSE (seen in CI: "host port 32890/tcp
// is already in use"). Not 8000-8001 either: the tests' container ports.
let nextPort = 8100 + Math.floor(Math.random() * 1400);

/**
 * 300 connects to PORT through one sockaddr buffer that a second thread
 * flips between addresses A and B the whole time (the TOCTOU the supervisor
 * must not fall for); prints "connected N".
 */
const FLIPPER = (port: number, a: string, b: string) => `import ctypes,socket,struct,threading
libc=ctypes.CDLL(None,use_errno=True)
a=struct.pack("<H",socket.AF_INET)+struct.pack(">H",${port})+socket.inet_aton("${a}")+bytes(8)
b=struct.pack("<H",socket.AF_INET)+struct.pack(">H",${port})+socket.inet_aton("${b}")+bytes(8)
buf=ctypes.create_string_buffer(a,16)
stop=False
def flip():
  while not stop:
    ctypes.memmove(buf,b,16); ctypes.memmove(buf,a,16)
threading.Thread(target=flip,daemon=True).start()
ok=0
for i in range(300):
  s=socket.socket()
  if libc.connect(s.fileno(),buf,16)==0: ok+=1
  s.close()
stop=True
print("connected", ok)
`;

/**
 * A server on BIND:PORT of the daemon's netns: each connection gets "peer
 * ADDR" and is logged as "conn LOCAL_ADDR" on stdout. It reads what the
 * client sent before closing: a close with unread data (curl's request)
 * would be a reset, and curl would fail on it. A client gone first (a reset)
 * only ends that connection.
 */
const SERVER = (port: number, bind = "127.0.0.1") =>
  `import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(("${bind}",${port}))\ns.listen(64)\nprint("ready",flush=True)\nwhile True:\n  c,a=s.accept()\n  print("conn", c.getsockname()[0], flush=True)\n  try:\n    c.sendall(b"peer %s\\n" % a[0].encode())\n    c.shutdown(socket.SHUT_WR)\n    c.settimeout(2)\n    while c.recv(4096): pass\n  except OSError: pass\n  c.close()\n`;

/** Connects to HOST:PORT from the sandbox: "local ADDR reply" or the error's errno name. */
const CLIENT = (host: string, port: number) =>
  `import socket,errno\ns=socket.socket()\ntry:\n  s.connect(("${host}",${port}))\n  print("local", s.getsockname()[0], s.recv(100).decode().strip())\nexcept OSError as e:\n  print(errno.errorcode.get(e.errno, e.errno))\n`;

/** Starts SERVER in `t`'s identity and netns; resolves once it listens. `lines` fills with what it prints. */
async function startServer(t: BurrowContext, port: number, bind?: string) {
  const proc = t.spawn(["python3", "-c", SERVER(port, bind)]);
  const lines: string[] = [];
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) lines.push(...dec.decode(chunk).split("\n").filter(Boolean));
  })();
  await until(async () => lines.includes("ready") || null, 10_000, `the server on ${bind ?? "127.0.0.1"}:${port}`);
  return {
    lines,
    async stop() {
      proc.kill();
      await proc.exited;
    },
  };
}

/**
 * A server inside a sandbox on BIND:8000 (an IPv6 socket for an IPv6 BIND):
 * prints "bound ADDR PORT" (getsockname: the host's address and port when it
 * got the published port's host socket), answers COUNT connections with
 * "local ADDR PORT" (the accepted socket's own address), then closes and exits.
 * SO_REUSEADDR as servers set it: the previous server's connections linger
 * in TIME_WAIT on port 8000 inside.
 */
const INSIDE_SERVER = (bind: string, count: number) =>
  `import socket\ns=socket.socket(socket.AF_INET6 if ":" in "${bind}" else socket.AF_INET)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(("${bind}",8000))\ns.listen(64)\nn=s.getsockname()\nprint("bound",n[0],n[1],flush=True)\nfor i in range(${count}):\n  c,a=s.accept()\n  l=c.getsockname()\n  c.sendall(b"local %s %d\\n" % (l[0].encode(), l[1]))\n  c.close()\ns.close()\nprint("closed",flush=True)\n`;

/** Connects to HOST:PORT and prints the first line it reads, "closed" for none, or the error. */
const ONE_LINE = (host: string, port: number) =>
  `import socket\ntry:\n  s=socket.create_connection(("${host}",${port}),timeout=10)\n  print(s.makefile().readline().strip() or "closed")\nexcept OSError as e:\n  print("error", e)\n`;

/** Runs SCRIPT under `burrow exec NAME`; resolves once it printed a line starting with `ready`. */
async function startInside(t: BurrowContext, name: string, script: string, ready = "bound") {
  const proc = t.spawnBurrow(["exec", name, "--", "python3", "-c", script]);
  const lines: string[] = [];
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) lines.push(...dec.decode(chunk).split("\n").filter(Boolean));
  })();
  const first = await until(async () => lines.find((l) => l.startsWith(ready)) ?? null, 10_000, `the server in ${name}`);
  return { first, lines, exited: proc.exited };
}

for (const mode of ["rootless", "rootful"] as const) {
  describeWhen(why)(`--accelerate (${mode})`, () => {
    let t: BurrowContext;
    let port: number;
    let server: Awaited<ReturnType<typeof startServer>>;
    let serverOut: string[];
    beforeEach(async () => {
      t = await burrowContext(mode);
      port = nextPort++;
      server = await startServer(t, port);
      serverOut = server.lines;
    });
    afterEach(async () => {
      await server.stop();
      await t.dispose();
    });

    const slirp = (allow: boolean) => `slirp4netns:allow_host_loopback=${allow}`;

    test("through the host alias with allow_host_loopback: a host socket, for run, exec and curl's non-blocking connect; inspect counts it", async () => {
      const out = await t.burrowOk(["run", "--rm", "--accelerate", "--network", slirp(true), "--", "python3", "-c", CLIENT("10.0.2.2", port)]);
      expect(out.trim()).toBe("local 127.0.0.1 peer 127.0.0.1");
      const plain = await t.burrowOk(["run", "--rm", "--network", slirp(true), "--", "python3", "-c", CLIENT("10.0.2.2", port)]);
      expect(plain.trim()).toBe("local 10.0.2.100 peer 127.0.0.1");

      await t.burrowOk(["run", "-d", "--name", "acc", "--accelerate", "--network", slirp(true), "--", "sleep", "60"]);
      const viaExec = await t.burrowOk(["exec", "acc", "--", "python3", "-c", CLIENT("10.0.2.2", port)]);
      expect(viaExec.trim()).toBe("local 127.0.0.1 peer 127.0.0.1");
      const curl = await t.burrowOk(["exec", "acc", "--", "curl", "-s", "--http0.9", `http://10.0.2.2:${port}/`]);
      expect(curl.trim()).toBe("peer 127.0.0.1");
      const inspected = await until(
        async () => {
          const [i] = JSON.parse(await t.burrowOk(["inspect", "acc"]));
          return i.NetworkSettings.AcceleratedConnections >= 2 ? i : null;
        },
        10_000,
        "inspect counting the two accelerated connections",
      );
      expect(inspected.HostConfig.Accelerate).toBe(true);
      await t.burrowOk(["rm", "-f", "acc"]);
    });

    test("without allow_host_loopback the host's loopback stays out of reach, exactly as without --accelerate", async () => {
      const accelerated = await t.burrowOk(["run", "--rm", "--accelerate", "--network", slirp(false), "--", "python3", "-c", CLIENT("10.0.2.2", port)]);
      const plain = await t.burrowOk(["run", "--rm", "--network", slirp(false), "--", "python3", "-c", CLIENT("10.0.2.2", port)]);
      expect(accelerated.trim()).toBe(plain.trim());
      expect(accelerated.trim()).not.toStartWith("local");
      expect(serverOut.filter((l) => l.startsWith("conn"))).toEqual([]);
    });

    test("the sandbox's own loopback, UDP and unix sockets stay its own; a nested network namespace gets no host socket", async () => {
      const script = `import socket,threading,subprocess,sys
srv=socket.socket(); srv.bind(("127.0.0.1",7000)); srv.listen(1)
def serve():
  c,a=srv.accept(); c.sendall(b"inside"); c.close()
threading.Thread(target=serve).start()
c=socket.socket(); c.connect(("127.0.0.1",7000)); print("tcp", c.getsockname()[0], c.recv(10).decode())
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",7001)); u.sendto(b"dgram",("127.0.0.1",7001)); print("udp", u.recv(10).decode())
a,b=socket.socketpair(); a.sendall(b"unix"); print("unix", b.recv(10).decode())
sys.stdout.flush()
r=subprocess.run(["unshare","-rn","python3","-c",${JSON.stringify(CLIENT("10.0.2.2", port))}],capture_output=True,text=True)
print("nested", r.stdout.strip() or r.stderr.strip())
`;
      const out = await t.burrowOk(["run", "--rm", "--accelerate", "--network", slirp(true), "--", "python3", "-c", script]);
      expect(out.trim().split("\n")).toEqual(["tcp 127.0.0.1 inside", "udp dgram", "unix unix", "nested ENETUNREACH"]);
      expect(serverOut.filter((l) => l.startsWith("conn"))).toEqual([]);
    });

    test("a thread rewriting the sockaddr during connect never reaches the host's loopback", async () => {
      // The buffer flips between the host alias (refused without
      // allow_host_loopback) and the sandbox's own 127.0.0.1 (nothing listens
      // there): whatever the supervisor reads, no connect may end at the host's server.
      const script = FLIPPER(port, "10.0.2.2", "127.0.0.1");
      const out = await t.burrowOk(["run", "--rm", "--accelerate", "--network", slirp(false), "--", "python3", "-c", script]);
      expect(out.trim()).toBe("connected 0");
      expect(serverOut.filter((l) => l.startsWith("conn"))).toEqual([]);
    });

    // Rootful only (not registered rootless): an "outside" address rootless would be the real network's.
    if (mode === "rootful")
      test("a sockaddr rewritten between an outside address and 127.0.0.1 only ever connects to the outside one", async () => {
        // 192.0.2.1 (TEST-NET-1) on the test netns's loopback is "outside" to the sandbox: its connects become host sockets.
        await t.run(["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"]);
        const wide = nextPort++;
        const all = await startServer(t, wide, "0.0.0.0");
        const seen = all.lines;
        try {
          const script = FLIPPER(wide, "192.0.2.1", "127.0.0.1");
          const out = await t.burrowOk(["run", "--rm", "--accelerate", "--network", slirp(false), "--", "python3", "-c", script]);
          const ok = Number(/^connected (\d+)$/.exec(out.trim())?.[1]);
          expect(ok).toBeGreaterThan(0);
          const conns = await until(
            async () => {
              const c = seen.filter((l) => l.startsWith("conn "));
              return c.length >= ok ? c : null;
            },
            10_000,
            "the server logging every connection",
          );
          // Every connection that reached the daemon's namespace went to the address burrow read, never to its loopback.
          expect([...new Set(conns)]).toEqual(["conn 192.0.2.1"]);
        } finally {
          await all.stop();
        }
      });

    // Rootful only: 192.0.2.1 on the test netns's loopback is an outside address (rootless it would be the real network's).
    if (mode === "rootful")
      test("a bridge network sandbox: outside destinations through host sockets, its own subnet through the bridge", async () => {
        await t.run(["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"]);
        const wide = nextPort++;
        const all = await startServer(t, wide, "0.0.0.0");
        try {
          const out = await t.burrowOk(["run", "--rm", "--accelerate", "--network", "bridge", "--", "python3", "-c", CLIENT("192.0.2.1", wide)]);
          // The host socket's own address is the daemon netns's; through the bridge it would be the sandbox's 10.x address.
          expect(out.trim()).toBe("local 192.0.2.1 peer 192.0.2.1");
          const plain = await t.burrowOk(["run", "--rm", "--network", "bridge", "--", "python3", "-c", CLIENT("192.0.2.1", wide)]);
          expect(plain.trim()).toMatch(/^local 10\.\d+\.\d+\.\d+ peer /);
        } finally {
          await all.stop();
        }
      });

    // BURROW_TEST_ACCEL_CRASH (read by the daemon only) makes every supervisor Worker die on receiving its Nth connect, before answering it.
    const CONNECTS = (n: number) =>
      `import socket\nfor i in range(${n}):\n  s=socket.socket()\n  s.connect(("10.0.2.2",${port}))\n  print(s.getsockname()[0], s.recv(100).decode().strip(), flush=True)\n  s.close()\n`;
    const daemonLog = () => readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8");

    test("the supervisor Worker dies on a connect it received: a new one answers that connect (it runs inside) and the next ones get host sockets", async () => {
      const env = { BURROW_TEST_ACCEL_CRASH: "3" };
      await t.burrowOk(["run", "-d", "--name", "c", "--accelerate", "--network", slirp(true), "--", "sleep", "600"], { env });
      const out = await t.burrowOk(["exec", "c", "--", "python3", "-c", CONNECTS(4)]);
      // 1-2: host sockets; 3: the Worker died holding it, its successor let it run in the sandbox; 4: the new Worker's host socket.
      const host = "127.0.0.1 peer 127.0.0.1";
      expect(out.trim().split("\n")).toEqual([host, host, "10.0.2.100 peer 127.0.0.1", host]);
      // A process that started after the restart: its listener came through the same handoff socket (the new Worker's 2nd connect).
      const again = await t.burrowOk(["exec", "c", "--", "python3", "-c", CONNECTS(1)]);
      expect(again.trim()).toBe("127.0.0.1 peer 127.0.0.1");
      expect(
        daemonLog().match(/accelerate: the supervisor died \(BURROW_TEST_ACCEL_CRASH[^\n]*restarting it \(sandboxes: 1, calls it left unanswered: 1\)/g)
          ?.length,
      ).toBe(1);
      await t.burrowOk(["rm", "-f", "c"]);
    });

    test("a sandbox that kills the supervisor Worker on every connect (it exits): after 3 restarts it runs unaccelerated, and no connect hangs", async () => {
      const env = { BURROW_TEST_ACCEL_CRASH: "exit:1" };
      const out = await t.burrowOk(["run", "--rm", "--accelerate", "--network", slirp(true), "--", "python3", "-c", CONNECTS(5)], { env });
      expect(out.trim().split("\n")).toEqual(Array(5).fill("10.0.2.100 peer 127.0.0.1"));
      const log = daemonLog();
      expect(log.match(/accelerate: the supervisor died \(its thread exited\): restarting it/g)?.length).toBe(3);
      expect(log).toContain("crashed it 3 times within a minute and runs unaccelerated from now on");
    });

    test("more than 10 restarts within a minute (4 sandboxes that kill the Worker): every sandbox runs unaccelerated from then on, new ones too, and no connect hangs", async () => {
      const env = { BURROW_TEST_ACCEL_CRASH: "exit:1" };
      // 3 deaths each for the first three sandboxes (then each runs unaccelerated); the fourth's second death is the 11th.
      for (let i = 0; i < 4; i++) {
        const out = await t.burrowOk(["run", "--rm", "--accelerate", "--network", slirp(true), "--", "python3", "-c", CONNECTS(3)], { env });
        expect(out.trim().split("\n")).toEqual(Array(3).fill("10.0.2.100 peer 127.0.0.1"));
      }
      // A sandbox started afterwards is served unaccelerated from its first call: the Worker never sees its connect.
      const later = await t.burrowOk(["run", "--rm", "--accelerate", "--network", slirp(true), "--", "python3", "-c", CONNECTS(2)], { env });
      expect(later.trim().split("\n")).toEqual(Array(2).fill("10.0.2.100 peer 127.0.0.1"));
      const log = daemonLog();
      expect(log.match(/accelerate: the supervisor died \(its thread exited\): restarting it/g)?.length).toBe(11);
      expect(log).toContain("it died 11 times within a minute: every sandbox runs unaccelerated from now on, until the daemon restarts");
      expect(log).not.toContain("not restarted");
    });

    test("kill -9 of the daemon: a connect waits for the next daemon, which takes the listener back from its keeper; rm -f leaves no keeper", async () => {
      const dir = mkdtempSync("/tmp/burrow-accel-");
      chmodSync(dir, 0o777);
      const go = `${dir}/go`;
      try {
        const script = `import os,time,socket\nprint("waiting",flush=True)\nwhile not os.path.exists(${JSON.stringify(go)}): time.sleep(0.05)\ns=socket.socket()\ns.connect(("10.0.2.2",${port}))\nprint("local", s.getsockname()[0], flush=True)\ntime.sleep(600)\n`;
        await t.burrowOk(["run", "-d", "--name", "k", "--accelerate", "--network", slirp(true), "--", "python3", "-c", script]);
        await until(async () => (await t.burrowOk(["logs", "k"])).includes("waiting") || null, 10_000, "the command to start");
        const [daemon] = daemonPids(t);
        expect(daemon).toBeGreaterThan(0);
        process.kill(daemon!, "SIGKILL");
        await until(() => !daemonPids(t).includes(daemon!), 10_000, "the daemon's end");
        // The connect is made now, by the command that was filtered under the killed daemon.
        writeFileSync(go, "");
        const line = await until(
          async () => (await t.burrowOk(["logs", "k"])).split("\n").find((l) => l.startsWith("local")),
          15_000,
          "the connect's answer",
        ).catch(async (e) => {
          // Once seen failing under load and never reproduced since: what the daemons and the command said, for the next time.
          const log = await Bun.file(`${t.dirs.runtimeDir}/daemon.log`)
            .text()
            .catch(() => "(no daemon.log)");
          console.error(`daemon.log:\n${log}\nlogs of k:\n${(await t.burrow(["logs", "k"])).stdout}`);
          throw e;
        });
        expect(line).toBe("local 127.0.0.1");
        await t.burrowOk(["rm", "-f", "k"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test("inbound: a server binding a published port gets the host's listening socket; one bound to 127.0.0.1 inside stays unreachable; the forwarder takes the port back", async () => {
      const host = nextPort++;
      await t.burrowOk(["run", "-d", "--name", "srv", "--accelerate", "--network", "slirp4netns", "-p", `127.0.0.1:${host}:8000`, "--", "sleep", "600"]);
      const hostClient = async () => (await t.run(["python3", "-c", ONE_LINE("127.0.0.1", host)])).stdout.trim();

      // Bound to the sandbox's loopback: the bind runs inside, the forwarder finds nothing on 10.0.2.100:8000.
      const loopback = await startInside(t, "srv", INSIDE_SERVER("127.0.0.1", 1));
      expect(loopback.first).toBe("bound 127.0.0.1 8000");
      expect(await hostClient()).not.toStartWith("local");
      expect((await t.burrowOk(["exec", "srv", "--", "python3", "-c", ONE_LINE("127.0.0.1", 8000)])).trim()).toBe("local 127.0.0.1 8000");
      await loopback.exited;

      // The wildcard: the server's socket is the host's listening socket (its name is the host's address and port).
      const accelerated = await startInside(t, "srv", INSIDE_SERVER("0.0.0.0", 1));
      expect(accelerated.first).toBe(`bound 127.0.0.1 ${host}`);
      // A second server on the port while the first holds it: EADDRINUSE, as inside.
      const second = `import socket,errno\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ntry:\n  s.bind(("0.0.0.0",8000)); print("bound", *s.getsockname())\nexcept OSError as e:\n  print(errno.errorcode[e.errno])\n`;
      expect((await t.burrowOk(["exec", "srv", "--", "python3", "-c", second])).trim()).toBe("EADDRINUSE");
      expect(await hostClient()).toBe(`local 127.0.0.1 ${host}`);
      await accelerated.exited;
      expect(accelerated.lines).toContain("closed");

      // An IPv6 socket cannot take the IPv4 host socket: it binds inside, and the forwarder, which took the port back, reaches it.
      const inside = await startInside(t, "srv", INSIDE_SERVER("::", 1));
      expect(inside.first).toBe("bound :: 8000");
      expect(await hostClient()).toMatch(/^local ::ffff:10\.0\.2\.100 8000$/);
      await inside.exited;

      // And the next wildcard bind gets the host socket again.
      const again = await startInside(t, "srv", INSIDE_SERVER("0.0.0.0", 1));
      expect(again.first).toBe(`bound 127.0.0.1 ${host}`);
      expect(await hostClient()).toBe(`local 127.0.0.1 ${host}`);
      await again.exited;
      await t.burrowOk(["rm", "-f", "srv"]);
    });

    test("inbound: 200 concurrent connections through a lent port, every byte checked; UDP on a published port stays on the forwarder", async () => {
      const host = nextPort++;
      const udp = nextPort++;
      await t.burrowOk([
        "run",
        "-d",
        "--name",
        "echo",
        "--accelerate",
        "--network",
        "slirp4netns",
        "-p",
        `127.0.0.1:${host}:8000`,
        "-p",
        `127.0.0.1:${udp}:8001/udp`,
        "--",
        "sleep",
        "600",
      ]);
      const echo = `import socket,threading
s=socket.socket(); s.bind(("0.0.0.0",8000)); s.listen(512)
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("0.0.0.0",8001))
print("bound",*s.getsockname(),"udp",*u.getsockname(),flush=True)
def dgram():
  d,a=u.recvfrom(100); u.sendto(b"udp "+d,a)
threading.Thread(target=dgram).start()
def serve(c):
  while True:
    d=c.recv(65536)
    if not d: break
    c.sendall(d)
  c.close()
for i in range(200):
  c,a=s.accept(); threading.Thread(target=serve,args=(c,)).start()
`;
      const server = await startInside(t, "echo", echo);
      expect(server.first).toBe(`bound 127.0.0.1 ${host} udp 0.0.0.0 8001`);
      const clients = `import socket,threading,os
bad=[]
def one(i):
  try:
    data=os.urandom(65536+i)
    s=socket.create_connection(("127.0.0.1",${host}),timeout=60)
    def send():
      s.sendall(data); s.shutdown(socket.SHUT_WR)
    w=threading.Thread(target=send); w.start()
    got=bytearray()
    while True:
      d=s.recv(65536)
      if not d: break
      got+=d
    w.join()
    if bytes(got)!=data: bad.append(i)
  except OSError as e:
    bad.append(str(e))
ts=[threading.Thread(target=one,args=(i,)) for i in range(200)]
for x in ts: x.start()
for x in ts: x.join()
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.settimeout(10); u.sendto(b"ping",("127.0.0.1",${udp}))
print("bad",bad); print(u.recv(100).decode())
`;
      const out = await t.run(["python3", "-c", clients]);
      expect(out.stdout.trim().split("\n")).toEqual(["bad []", "udp ping"]);
      await server.exited;
      await t.burrowOk(["rm", "-f", "echo"]);
    });

    test("inbound: kill -9 of the daemon while a server holds a published port: the next daemon restores every port and takes that one back when the server closes it", async () => {
      const host = nextPort++;
      const other = nextPort++;
      await t.burrowOk([
        "run",
        "-d",
        "--name",
        "held",
        "--accelerate",
        "--network",
        "slirp4netns",
        "-p",
        `127.0.0.1:${host}:8000`,
        "-p",
        `127.0.0.1:${other}:8001`,
        "--",
        "sleep",
        "600",
      ]);
      const hostClient = async (p: number) => (await t.run(["python3", "-c", ONE_LINE("127.0.0.1", p)])).stdout.trim();
      const server = await startInside(t, "held", INSIDE_SERVER("0.0.0.0", 1));
      expect(server.first).toBe(`bound 127.0.0.1 ${host}`);
      const [daemon] = daemonPids(t);
      expect(daemon).toBeGreaterThan(0);
      process.kill(daemon!, "SIGKILL");
      await until(() => !daemonPids(t).includes(daemon!), 10_000, "the daemon's end");
      // The next daemon (started by this command) restores the ports: the held one's bind fails with EADDRINUSE, and it takes the server's socket instead.
      const [row] = JSON.parse(await t.burrowOk(["inspect", "held"]));
      expect(row.State.Error).toBe("");
      expect(await hostClient(host)).toBe(`local 127.0.0.1 ${host}`);
      await server.exited;
      // The other port is served by the new daemon's forwarder, and so is the first once the server let it go.
      const inside = await startInside(
        t,
        "held",
        `import socket,threading
def serve(p):
  s=socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("::",p)); s.listen(4)
  c,a=s.accept(); l=c.getsockname(); c.sendall(b"local %s %d\\n" % (l[0].encode(), l[1])); c.close()
ts=[threading.Thread(target=serve,args=(p,)) for p in (8000,8001)]
for x in ts: x.start()
print("bound",flush=True)
for x in ts: x.join()
`,
      );
      expect(inside.first).toBe("bound");
      expect(await hostClient(other)).toBe("local ::ffff:10.0.2.100 8001");
      expect(await hostClient(host)).toBe("local ::ffff:10.0.2.100 8000");
      await inside.exited;
      await t.burrowOk(["rm", "-f", "held"]);
    });

    test("an egress policy: the supervisor refuses what it refuses before any host socket, lets through what it allows, and --egress-log-only only reports", async () => {
      // The flags come with issue 18's wiring (E3): until then this test has nothing to drive.
      const help = await t.burrow(["run", "--help"]);
      if (!help.stdout.includes("--allow-cidr")) return console.warn("skipped: needs the egress flags on run (issue 18 wiring merge)");
      // The host alias (allow_host_loopback) is the one address outside the sandbox that both modes reach: with
      // --accelerate its connects are host sockets, which the sandbox's nftables ruleset never sees.
      const events = async (name: string, type: string) =>
        (await t.burrowOk(["events", "--stream=false", "--filter", `sandbox=${name}`, "--format", "json"]))
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { type: string; attributes: Record<string, unknown> })
          .filter((e) => e.type === type);
      const start = (name: string, egress: string[]) =>
        t.burrowOk(["run", "-d", "--name", name, "--accelerate", "--network", slirp(true), ...egress, "--", "sleep", "600"]);

      // Not allowed: refused by the supervisor. Without the policy in the supervisor it would have been a host socket ("local 127.0.0.1").
      await start("eg-refused", ["--allow-cidr", "198.51.100.0/24"]);
      expect((await t.burrowOk(["exec", "eg-refused", "--", "python3", "-c", CLIENT("10.0.2.2", port)])).trim()).toBe("ECONNREFUSED");
      const refused = await until(async () => (await events("eg-refused", "egress-refused"))[0] ?? null, 10_000, "the refusal event");
      expect(refused.attributes).toMatchObject({ destination: "10.0.2.2", protocol: "tcp", reason: "default deny" });
      expect(String(refused.attributes.port)).toBe(String(port));

      // Allowed by a CIDR rule with its port: a host socket, as without a policy.
      await start("eg-allowed", ["--allow-cidr", `10.0.2.2/32:${port}/tcp`]);
      expect((await t.burrowOk(["exec", "eg-allowed", "--", "python3", "-c", CLIENT("10.0.2.2", port)])).trim()).toBe("local 127.0.0.1 peer 127.0.0.1");
      expect(await events("eg-allowed", "egress-refused")).toEqual([]);

      // Log-only: the connection is made, and reported as the refusal it would have been.
      await start("eg-logged", ["--egress-log-only", "--allow-cidr", "198.51.100.0/24"]);
      expect((await t.burrowOk(["exec", "eg-logged", "--", "python3", "-c", CLIENT("10.0.2.2", port)])).trim()).toBe("local 127.0.0.1 peer 127.0.0.1");
      const logged = await until(async () => (await events("eg-logged", "egress-would-refuse"))[0] ?? null, 10_000, "the would-refuse event");
      expect(logged.attributes).toMatchObject({ destination: "10.0.2.2", protocol: "tcp", reason: "default deny" });

      // Exactly the two allowed connections reached the server (its log is read as it comes).
      const conns = await until(
        async () => {
          const c = serverOut.filter((l) => l.startsWith("conn"));
          return c.length >= 2 ? c : null;
        },
        10_000,
        "the server logging both allowed connections",
      );
      expect(conns).toEqual(["conn 127.0.0.1", "conn 127.0.0.1"]);
      await t.burrowOk(["rm", "-f", "eg-refused", "eg-allowed", "eg-logged"]);
    });

    test("refused in one line where it cannot apply, leaving nothing", async () => {
      for (const network of ["none", "host"]) {
        const r = await t.burrow(["run", "--rm", "--accelerate", "--network", network, "--", "true"]);
        expect(r.code).toBe(125);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain(`--accelerate works with --network slirp4netns, pasta or a bridge network, not --network "${network}"`);
      }
      expect((await t.burrowOk(["ps", "-a", "-q"])).trim()).toBe("");
    });
  });
}
