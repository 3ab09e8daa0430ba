// The builtin port forwarder against real services in a real network
// namespace. Needs root (ip netns); traffic goes only to 127.0.0.1/::1 on the
// host and to 10.0.2.100 inside the namespace this test makes.
//
// The forwarder runs in this test process (setns(CLONE_NEWNET) on a Worker
// thread works under `bun test` too); one test runs it compiled with
// `bun build --compile`, the way dist/burrow embeds the connector worker.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BurrowError } from "../../src/errors.ts";
import { createForwarder, type ForwardSpec, type Forwarder } from "../../src/ports/forwarder.ts";
import { cleanEnv } from "../../src/sys/env.ts";
import { createNetns, type TestNetns } from "../helpers/netns.ts";
import { patternHash } from "../helpers/pattern.ts";
import { fromBuffer, fromPattern, transfer } from "../helpers/tcp-client.ts";
import { until } from "../helpers/until.ts";
import { describeWhen, needsRoot } from "../helpers/requirements.ts";

const ADDR = "10.0.2.100";
const BASE = 7000;
const PORT = { echo: BASE, http: BASE + 1, sink: BASE + 2, udpEcho: BASE + 3, loopbackOnly: BASE + 4, source: BASE + 5 };
const repo = join(import.meta.dir, "../..");

async function sh(...cmd: string[]): Promise<void> {
  const p = Bun.spawn(cmd, { env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  if ((await p.exited) !== 0) throw new Error(`${cmd.join(" ")}: ${await new Response(p.stderr).text()}`);
}

let ns: TestNetns;
let NETNS: string;

/** A test netns with ADDR on an interface of its own (a dummy, or a veth pair when the dummy module is missing). */
async function makeNetns(): Promise<void> {
  ns = await createNetns();
  NETNS = ns.path;
  const NS = ns.name;
  try {
    await sh("ip", "-n", NS, "link", "add", "d0", "type", "dummy");
  } catch {
    await sh("ip", "-n", NS, "link", "add", "d0", "type", "veth", "peer", "name", "d1");
    await sh("ip", "-n", NS, "link", "set", "d1", "up");
  }
  await sh("ip", "-n", NS, "addr", "add", `${ADDR}/24`, "dev", "d0");
  await sh("ip", "-n", NS, "link", "set", "d0", "up");
}

let servers: Bun.Subprocess<"pipe", "pipe", "inherit"> | undefined;
let fwd: Forwarder;

async function forward(targetPort: number, protocol: "tcp" | "udp" = "tcp", extra: Partial<ForwardSpec> = {}) {
  return fwd.add({ hostIp: "127.0.0.1", hostPort: 0, protocol, netnsPath: NETNS, targetIp: ADDR, targetPort, ...extra });
}

describeWhen(needsRoot())("builtin port forwarder", () => {
  beforeAll(async () => {
    await makeNetns();
    servers = Bun.spawn(["nsenter", `--net=${NETNS}`, process.execPath, join(repo, "test/helpers/netns-servers.ts"), ADDR, String(BASE)], {
      env: cleanEnv(),
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    const reader = servers.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    if (!new TextDecoder().decode(value).includes("ready")) throw new Error("test servers did not start");
    fwd = createForwarder({ udpIdleMs: 400 });
  });

  afterAll(async () => {
    fwd?.close();
    servers?.kill();
    await servers?.exited;
    await ns?.remove();
  });

  test("HTTP request and response reach the sandbox's service", async () => {
    const p = await forward(PORT.http);
    expect(p.hostPort).toBeGreaterThan(0);
    const res = await fetch(`http://127.0.0.1:${p.hostPort}/hello`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-served-by")).toBe("netns");
    expect(await res.text()).toBe("hello from the sandbox: GET /hello\n");
    p.close();
  });

  test("IPv6 host address ::1 is forwarded", async () => {
    const p = await forward(PORT.http, "tcp", { hostIp: "::1" });
    const res = await fetch(`http://[::1]:${p.hostPort}/v6`, { headers: { connection: "close" } });
    expect(await res.text()).toBe("hello from the sandbox: GET /v6\n");
    p.close();
  });

  test("200 concurrent connections echo their random data byte for byte, and leave no fd behind", async () => {
    const p = await forward(PORT.echo);
    // One connection first, so the relay worker's own fds (epoll, parking netns) exist already.
    await transfer({ port: p.hostPort, total: 1, produce: fromBuffer(new Uint8Array([1])) });
    await until(() => fwd.stats().tcpConnections === 0);
    const fdsBefore = readdirSync("/proc/self/fd").length;
    const payloads = Array.from({ length: 200 }, (_, i) => crypto.getRandomValues(new Uint8Array(1 + ((i * 7919) % 300_000))));
    const results = await Promise.all(payloads.map((data) => transfer({ port: p.hostPort, total: data.byteLength, produce: fromBuffer(data) })));
    results.forEach((r, i) => {
      expect(r.bytes).toBe(payloads[i]!.byteLength);
      expect(Buffer.compare(r.data, payloads[i]!)).toBe(0);
    });
    await until(() => fwd.stats().tcpConnections === 0);
    expect(readdirSync("/proc/self/fd").length).toBe(fdsBefore);
    p.close();
  }, 60_000);

  const GiB = 1 << 30;
  let expectedHash: string;

  test("1 GiB upload arrives intact (sha256)", async () => {
    expectedHash = patternHash(GiB);
    const p = await forward(PORT.sink);
    const r = await transfer({ port: p.hostPort, total: GiB, produce: fromPattern() });
    expect(new TextDecoder().decode(r.data)).toBe(`${GiB} ${expectedHash}\n`);
    p.close();
  }, 180_000);

  test("1 GiB download arrives intact (sha256)", async () => {
    expectedHash ??= patternHash(GiB);
    const p = await forward(PORT.source);
    const request = new TextEncoder().encode(`${GiB}\n`);
    const r = await transfer({ port: p.hostPort, total: request.byteLength, produce: fromBuffer(request), halfClose: false, keep: false, hash: true });
    expect(r.bytes).toBe(GiB);
    expect(r.hash).toBe(expectedHash);
    p.close();
  }, 180_000);

  test("client half-close: the reply the server sends after EOF still arrives", async () => {
    const p = await forward(PORT.sink);
    const msg = new TextEncoder().encode("hello, then EOF");
    const r = await transfer({ port: p.hostPort, total: msg.byteLength, produce: fromBuffer(msg) });
    const digest = new Bun.CryptoHasher("sha256").update(msg).digest("hex");
    expect(new TextDecoder().decode(r.data)).toBe(`${msg.byteLength} ${digest}\n`);
    p.close();
  });

  test("UDP datagrams are echoed back to each client, and idle flows expire", async () => {
    const p = await forward(PORT.udpEcho, "udp");
    const replies: string[][] = [[], []];
    const clients = await Promise.all(
      [0, 1].map((i) =>
        Bun.udpSocket({
          hostname: "127.0.0.1",
          socket: {
            data(_s, d) {
              replies[i]!.push(new TextDecoder().decode(d));
            },
          },
        }),
      ),
    );
    for (let round = 0; round < 50 && (replies[0]!.length < 3 || replies[1]!.length < 3); round++) {
      // UDP may drop the first datagrams while the flow's socket is made: resend.
      if (round % 10 === 0) for (const [i, c] of clients.entries()) for (const k of [1, 2, 3]) c.send(`c${i}-m${k}`, p.hostPort, "127.0.0.1");
      await Bun.sleep(20);
    }
    expect(new Set(replies[0])).toEqual(new Set(["c0-m1", "c0-m2", "c0-m3"]));
    expect(new Set(replies[1])).toEqual(new Set(["c1-m1", "c1-m2", "c1-m3"]));
    expect(fwd.stats().udpFlows).toBe(2);
    await until(() => fwd.stats().udpFlows === 0, 5000);
    for (const c of clients) c.close();
    p.close();
  });

  test("UDP on ::1: 300 datagrams of up to 8 KB come back intact", async () => {
    const p = await forward(PORT.udpEcho, "udp", { hostIp: "::1" });
    const sent = Array.from({ length: 300 }, (_, i) => {
      const d = crypto.getRandomValues(new Uint8Array(4 + ((i * 977) % 8000)));
      new DataView(d.buffer).setUint32(0, i);
      return d;
    });
    const back = new Map<number, Uint8Array>();
    const client = await Bun.udpSocket({
      hostname: "::1",
      binaryType: "uint8array",
      socket: {
        data(_s, d) {
          back.set(new DataView(d.buffer, d.byteOffset).getUint32(0), d.slice());
        },
      },
    });
    // Paced, and resending what is missing: UDP may drop under a burst.
    for (let round = 0; round < 5 && back.size < sent.length; round++) {
      for (const [i, d] of sent.entries()) {
        if (back.has(i)) continue;
        client.send(d, p.hostPort, "::1");
        if (i % 25 === 0) await Bun.sleep(2);
      }
      await until(() => back.size === sent.length, 1000).catch(() => {});
    }
    client.close();
    expect(back.size).toBe(sent.length);
    for (const [i, d] of sent.entries()) expect(Buffer.compare(back.get(i)!, d)).toBe(0);
    p.close();
  });

  test("a service bound only to the sandbox's 127.0.0.1 is not reachable", async () => {
    // Directly asking for loopback is refused...
    await expect(forward(PORT.loopbackOnly, "tcp", { targetIp: "127.0.0.1" })).rejects.toThrow(/never to its loopback/);
    // ...and the sandbox's own address does not reach it: the connection is closed, nothing echoed.
    const p = await forward(PORT.loopbackOnly);
    const msg = new TextEncoder().encode("anyone there?");
    const r = await transfer({ port: p.hostPort, total: msg.byteLength, produce: fromBuffer(msg) }).catch(() => ({ bytes: 0 }));
    expect(r.bytes).toBe(0);
    await until(() => fwd.stats().tcpConnections === 0);
    p.close();
  });

  test("a host port in use is reported with the port and address", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const err = await forward(PORT.http, "tcp", { hostPort: holder.port }).catch((e) => e);
      expect(err).toBeInstanceOf(BurrowError);
      expect(err.message).toBe(`host port ${holder.port}/tcp is already in use on 127.0.0.1`);
      const all = await forward(PORT.http, "tcp", { hostIp: "", hostPort: holder.port }).catch((e) => e);
      expect(all.message).toBe(`host port ${holder.port}/tcp is already in use on 0.0.0.0`);
    } finally {
      holder.stop(true);
    }
    const udpHolder = await Bun.udpSocket({ hostname: "127.0.0.1" });
    try {
      const err = await forward(PORT.udpEcho, "udp", { hostPort: udpHolder.port }).catch((e) => e);
      expect(err.message).toBe(`host port ${udpHolder.port}/udp is already in use on 127.0.0.1`);
    } finally {
      udpHolder.close();
    }
  });

  test("the connector collects its own garbage once idle, and then sleeps", async () => {
    // Its thread never returns to an event loop, so JSC's GC timers never
    // run there: without this the daemon's RSS grew with every connection.
    const p = await forward(PORT.http);
    const before = fwd.stats().collections;
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${p.hostPort}/gc${i}`, { headers: { connection: "close" } });
      expect(await res.text()).toBe(`hello from the sandbox: GET /gc${i}\n`);
    }
    await until(() => fwd.stats().tcpConnections === 0);
    await until(() => fwd.stats().collections > before, 5000, "a collection after the connections");
    // Once a second has passed since the last garbage (a late close), there
    // is nothing new to collect: no further wake-ups for it.
    await Bun.sleep(1500);
    const after = fwd.stats().collections;
    await Bun.sleep(1500);
    expect(fwd.stats().collections).toBe(after);
    p.close();
  }, 15_000);

  test("closing a port stops its listener", async () => {
    const p = await forward(PORT.http);
    p.close();
    await expect(fetch(`http://127.0.0.1:${p.hostPort}/`)).rejects.toThrow();
  });

  describe("compiled with bun build --compile", () => {
    let dir = "";
    let bin = "";
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "burrow-fwd-"));
      chmodSync(dir, 0o755); // the privileged-port test runs the binary as nobody
      bin = join(dir, "forwarder-harness");
      const build = Bun.spawnSync(
        [
          process.execPath,
          "build",
          "--compile",
          join(repo, "test/helpers/forwarder-harness.ts"),
          join(repo, "src/ports/connector-worker.ts"),
          // What src/log.ts requires by path on a first message.
          join(repo, "src/log-consola.ts"),
          join(repo, "src/log-consola-core.ts"),
          "--outfile",
          bin,
        ],
        { env: cleanEnv(), stdout: "pipe", stderr: "pipe" },
      );
      if (build.exitCode !== 0) throw new Error(`bun build --compile failed: ${build.stderr.toString()}`);
    }, 60_000);
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    async function startHarness(args: string[], opts: { uid?: number } = {}) {
      const cmd = opts.uid === undefined ? [bin, ...args] : ["setpriv", `--reuid=${opts.uid}`, `--regid=${opts.uid}`, "--clear-groups", bin, ...args];
      const p = Bun.spawn(cmd, { env: cleanEnv(), stdin: "pipe", stdout: "pipe", stderr: "inherit" });
      const reader = p.stdout.getReader();
      const { value } = await reader.read();
      reader.releaseLock();
      return { proc: p, first: JSON.parse(new TextDecoder().decode(value).split("\n")[0]!) as { ports?: number[]; error?: string } };
    }

    test("the embedded connector worker forwards TCP and UDP", async () => {
      const { proc, first } = await startHarness([NETNS, `tcp:127.0.0.1:0:${ADDR}:${PORT.http}`, `udp:127.0.0.1:0:${ADDR}:${PORT.udpEcho}`]);
      try {
        expect(first.error).toBeUndefined();
        const res = await fetch(`http://127.0.0.1:${first.ports![0]}/compiled`, { headers: { connection: "close" } });
        expect(await res.text()).toBe("hello from the sandbox: GET /compiled\n");
        const replies: string[] = [];
        const client = await Bun.udpSocket({
          hostname: "127.0.0.1",
          socket: {
            data(_s, d) {
              replies.push(new TextDecoder().decode(d));
            },
          },
        });
        for (let i = 0; i < 50 && replies.length === 0; i++) {
          if (i % 10 === 0) client.send("compiled-udp", first.ports![1]!, "127.0.0.1");
          await Bun.sleep(20);
        }
        client.close();
        expect(replies[0]).toBe("compiled-udp");
      } finally {
        proc.stdin.end();
        await proc.exited;
      }
    }, 60_000);

    test("a privileged port names the sysctl that allows it", async () => {
      const start = Number((await Bun.file("/proc/sys/net/ipv4/ip_unprivileged_port_start").text()).trim());
      if (start <= 80) return; // this machine lets everyone bind port 80
      const { proc, first } = await startHarness([NETNS, `tcp:127.0.0.1:80:${ADDR}:${PORT.http}`], { uid: 65534 });
      proc.stdin.end();
      await proc.exited;
      expect(first.error).toContain("sysctl net.ipv4.ip_unprivileged_port_start=80");
      expect(first.error).toContain("80/tcp");
    }, 30_000);
  });
});
