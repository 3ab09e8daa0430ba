// A small "internet" in namespaces the test makes, for the egress policy's
// integration tests (issue 18 "Tests"; docs/egress.md "How it is tested").
// Nothing touches the host's network:
//
//   client netns                         internet netns
//   (burrow's daemon, its sandboxes)     (servers, dnsmasq)
//   198.51.100.2/24  ───── veth ─────  198.51.100.1/24
//   2001:db8:1::2/64                   2001:db8:1::1/64
//   default routes via .1 and ::1      on lo: 198.51.100.10 .20 .53,
//                                             2001:db8::10 ::20 ::53
//
// Rootless, the test user's burrow runs inside the client netns (as
// source-ip.test.ts places it in its server netns: nsenter as root, then
// setpriv), so its daemon and holder, and slirp4netns's or pasta's host
// sockets, live there, and the sandbox's way out is that veth. Rootful, the
// context's own test netns is the client netns.
//
// The internet netns holds, on each of 198.51.100.10 (allowed in the tests),
// 198.51.100.20 (not), 2001:db8::10 and 2001:db8::20, a TCP server that
// answers each connection with one HTTP response naming the address and port
// it was reached on, and a UDP echo answering the same, on ports 80 and 8080;
// and dnsmasq on 198.51.100.53 and 2001:db8::53, port 53, answering only the
// names below (NXDOMAIN for other .test names).
//
// `PROBE` is a python3 program that a sandbox runs (it sees the host's
// filesystem): each probe is one line of JSON in, one string out, the same
// strings whichever way a probe fails, so a test compares whole lists.
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import type { BurrowContext } from "./context.ts";
import { burrowBin, testRunId, TAG_VAR } from "./env.ts";
import { createNetns, type TestNetns } from "./netns.ts";
import { commandFor, type RunResult } from "./run.ts";
import { until } from "./until.ts";

export const NET = {
  gateway4: "198.51.100.1",
  client4: "198.51.100.2",
  gateway6: "2001:db8:1::1",
  client6: "2001:db8:1::2",
  allowed4: "198.51.100.10",
  denied4: "198.51.100.20",
  dns4: "198.51.100.53",
  allowed6: "2001:db8::10",
  denied6: "2001:db8::20",
  dns6: "2001:db8::53",
} as const;

/** Ports every server address listens on, TCP and UDP. */
export const PORTS = [80, 8080] as const;

/** What dnsmasq answers (all with TTL 300). */
export const NAMES = {
  "allowed.test": [NET.allowed4, NET.allowed6],
  "denied.test": [NET.denied4, NET.denied6],
  "edge.cdn.test": [NET.allowed4],
  "rebind.allowed.test": ["127.0.0.1"],
  "private.allowed.test": ["192.168.1.1"],
  /** The client namespace's own address: the host, as burrow's daemon there sees it. */
  "host.allowed.test": [NET.client4],
  /** NAT64 (RFC 6052 well-known prefix): 10.0.0.1 and 198.51.100.10 behind a NAT64 gateway; RFC 8215's local-use prefix. */
  "nat64.allowed.test": ["64:ff9b::a00:1"],
  "nat64-public.allowed.test": ["64:ff9b::c633:640a"],
  "nat64-local.allowed.test": ["64:ff9b:1::a00:1"],
} as const;
/** CNAMEs: cdn.allowed.test leads to a name no rule allows, alias.allowed.test to allowed.test. */
export const CNAMES = { "cdn.allowed.test": "edge.cdn.test", "alias.allowed.test": "allowed.test" } as const;

export const PYTHON = "/usr/bin/python3";

/** The servers of the internet netns: TCP "HTTP" and UDP echo on every address and port given. */
const SERVERS = `
import socket, sys, threading
addrs = sys.argv[1].split(",")
ports = [int(p) for p in sys.argv[2].split(",")]
def fam(a): return socket.AF_INET6 if ":" in a else socket.AF_INET
def answer(c, a, p):
    try:
        c.settimeout(5)
        c.recv(4096)
        body = ("%s %d tcp\\n" % (a, p)).encode()
        c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % len(body) + body)
    except OSError:
        pass
    finally:
        c.close()
def tcp(s, a, p):
    while True:
        c, _ = s.accept()
        threading.Thread(target=answer, args=(c, a, p), daemon=True).start()
def udp(s, a, p):
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(("%s %d udp\\n" % (a, p)).encode(), peer)
threads = []
for a in addrs:
    for p in ports:
        t = socket.socket(fam(a), socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((a, p))
        t.listen(128)
        u = socket.socket(fam(a), socket.SOCK_DGRAM)
        u.bind((a, p))
        threads += [threading.Thread(target=tcp, args=(t, a, p), daemon=True), threading.Thread(target=udp, args=(u, a, p), daemon=True)]
for t in threads: t.start()
print("ready", flush=True)
threading.Event().wait()
`;

export type Probe =
  /** Connect, send an HTTP request, print the body's line ("ok 198.51.100.10 80 tcp") or the error. */
  | { tcp: string; port: number }
  /** Send one datagram, print the echo ("ok 198.51.100.10 8080 udp") or the error. */
  | { udp: string; port: number }
  /** One ICMP echo over a datagram socket (ping_group_range): "ok" or the error. */
  | { ping: string }
  /** getaddrinfo through the sandbox's resolv.conf: the sorted addresses, or the EAI_ name. */
  | { resolve: string }
  /** One raw DNS query to `server` port 53 (UDP, or TCP with tcp: true): "RCODE [CNAME:name] addr..." or the error. */
  | { dns: string; server: string; type?: "A" | "AAAA"; tcp?: boolean }
  /** A shell command: "exit N" (its output goes to stderr). */
  | { sh: string };

/**
 * The probe program. Errors are errno names (ECONNREFUSED: the ruleset's TCP
 * reset; EPERM: a dropped UDP or ICMP send), "timeout" when nothing came
 * back in time (never expected when the policy is right: refusals are
 * synchronous, answers come from the next namespace).
 */
export const PROBE = `
import errno, json, os, random, socket, struct, subprocess, sys
def err(e):
    if isinstance(e, socket.timeout): return "timeout"
    if isinstance(e, socket.gaierror):
        for k in dir(socket):
            if k.startswith("EAI_") and getattr(socket, k) == e.errno: return k
        return "gaierror %s" % e.errno
    if isinstance(e, OSError) and e.errno: return errno.errorcode.get(e.errno, str(e.errno))
    return repr(e)
def fam(h): return socket.AF_INET6 if ":" in h else socket.AF_INET
def tcp(h, p):
    s = socket.socket(fam(h), socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((h, p))
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while True:
        b = s.recv(4096)
        if not b: break
        data += b
    s.close()
    return "ok " + data.decode().split("\\r\\n\\r\\n", 1)[-1].strip()
# UDP and ICMP may lose a datagram: three tries, as real clients do. (The
# first IPv6 one of a new sandbox was lost in most runs: the internet was
# not ready over IPv6 yet; createInternet waits for that now.)
def exchange(s, dest, payload):
    s.settimeout(1)
    for attempt in range(3):
        s.sendto(payload, dest)
        try:
            return s.recvfrom(4096)[0]
        except socket.timeout:
            if attempt == 2: raise
def udp(h, p):
    s = socket.socket(fam(h), socket.SOCK_DGRAM)
    return "ok " + exchange(s, (h, p), b"hello").decode().strip()
def ping(h):
    v6 = ":" in h
    s = socket.socket(fam(h), socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    data = exchange(s, (h, 0), bytes([128 if v6 else 8, 0, 0, 0, 0, 0, 0, 1]) + b"burrow")
    return "ok" if data[0] == (129 if v6 else 0) else "type %d" % data[0]
def resolve(n):
    return " ".join(sorted({a[4][0] for a in socket.getaddrinfo(n, 80, 0, socket.SOCK_STREAM)}))
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
def name_at(m, i):
    labels = []
    while True:
        n = m[i]
        if n >= 0xC0:
            labels.append(name_at(m, ((n & 0x3F) << 8) | m[i + 1])[0])
            return ".".join(labels), i + 2
        i += 1
        if n == 0: return ".".join(labels), i
        labels.append(m[i:i + n].decode()); i += n
def dns(n, server, qtype, over_tcp):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\\0" + struct.pack(">HH", 28 if qtype == "AAAA" else 1, 1)
    s = socket.socket(fam(server), socket.SOCK_STREAM if over_tcp else socket.SOCK_DGRAM)
    s.settimeout(2)
    if over_tcp:
        s.connect((server, 53)); s.sendall(struct.pack(">H", len(q)) + q)
        m = b""
        while len(m) < 2 or len(m) < 2 + struct.unpack(">H", m[:2])[0]:
            b = s.recv(4096)
            if not b: break
            m += b
        m = m[2:]
    else:
        m = exchange(s, (server, 53), q)
    rid, flags, qd, an = struct.unpack(">HHHH", m[:8])
    if rid != qid: return "wrong id"
    i = 12
    for _ in range(qd): i = name_at(m, i)[1] + 4
    out = [RCODES.get(flags & 15, str(flags & 15))]
    for _ in range(an):
        i = name_at(m, i)[1]
        t, _c, _ttl, ln = struct.unpack(">HHIH", m[i:i + 10]); i += 10
        rd = m[i:i + ln]
        if t == 1: out.append(socket.inet_ntop(socket.AF_INET, rd))
        elif t == 28: out.append(socket.inet_ntop(socket.AF_INET6, rd))
        elif t == 5: out.append("CNAME:" + name_at(m, i)[0])
        i += ln
    return " ".join(out)
results = []
for line in sys.stdin:
    p = json.loads(line)
    try:
        if "dns" in p: r = dns(p["dns"], p["server"], p.get("type", "A"), p.get("tcp", False))
        elif "tcp" in p: r = tcp(p["tcp"], p["port"])
        elif "udp" in p: r = udp(p["udp"], p["port"])
        elif "ping" in p: r = ping(p["ping"])
        elif "resolve" in p: r = resolve(p["resolve"])
        elif "sh" in p: r = "exit %d" % subprocess.run(["/bin/sh", "-c", p["sh"]], stdout=sys.stderr, stderr=sys.stderr).returncode
        else: r = "bad probe"
    except Exception as e:
        r = err(e)
    results.append(r)
print(json.dumps(results), flush=True)
`;

/** The argv that runs the probes (they go on stdin, one JSON line each). */
export const probeArgv = (): string[] => [PYTHON, "-c", PROBE];
export const probeInput = (probes: readonly Probe[]): string => probes.map((p) => `${JSON.stringify(p)}\n`).join("");

/** The probe program's answer: its last stdout line. */
export function probeResults(r: RunResult, what: string): string[] {
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    const out = JSON.parse(last);
    if (Array.isArray(out)) return out;
  } catch {}
  throw new Error(`${what}: no probe results (exit ${r.code}):\n${r.stderr}${r.stdout}`);
}

export interface Internet {
  /** Where burrow runs (rootless: made here; rootful: the context's netns). */
  client: TestNetns;
  internet: TestNetns;
  /** `burrow ARGS` as `t`'s identity and dirs, inside the client netns. */
  burrow(t: BurrowContext, args: string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<RunResult>;
  burrowOk(t: BurrowContext, args: string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<string>;
  /** `burrow run --rm RUNARGS -- python3 PROBE` with the probes: their results, in order. */
  probe(t: BurrowContext, runArgs: string[], probes: readonly Probe[]): Promise<string[]>;
  /** `burrow exec NAME -- python3 PROBE` in a running sandbox. */
  probeExec(t: BurrowContext, name: string, probes: readonly Probe[]): Promise<string[]>;
  /** The probes as root straight from the client netns (no burrow): the internet's own check. */
  probeDirect(probes: readonly Probe[]): Promise<string[]>;
  /** Stops the servers and removes what it made (the client netns only if it made it). */
  dispose(): Promise<void>;
}

async function sh(argv: string[], opts: { stdin?: string; env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const p = Bun.spawn(argv, {
    stdin: opts.stdin === undefined ? "ignore" : Buffer.from(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: opts.env,
    cwd: opts.cwd,
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill("SIGKILL");
  }, opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr: timedOut ? `${stderr}[killed after ${opts.timeoutMs ?? 30_000} ms]\n` : stderr, timedOut };
}

async function ok(argv: string[]): Promise<void> {
  const r = await sh(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
}

/** The servers' and dnsmasq's environment: a tag of their own, so the leak
 * check of a context never counts them as its own, nor as nobody's. */
const serviceEnv = (): Record<string, string> => ({ PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", [TAG_VAR]: `${testRunId}/internet` });

export function dnsmasqArgs(pidFile: string): string[] {
  return [
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    `--pid-file=${pidFile}`,
    "--user=root",
    "--no-resolv",
    "--no-hosts",
    "--no-poll",
    "--bind-interfaces",
    `--listen-address=${NET.dns4}`,
    `--listen-address=${NET.dns6}`,
    "--local-ttl=300",
    "--local=/test/",
    ...Object.entries(NAMES).map(([name, addrs]) => `--host-record=${name},${addrs.join(",")}`),
    ...Object.entries(CNAMES).map(([name, target]) => `--cname=${name},${target}`),
  ];
}

/**
 * Makes the two namespaces, the link, the servers and dnsmasq, and returns
 * once each answers from the client netns. Cleans up after itself if any
 * step fails. `client`: a netns to use as the client (rootful: the context's).
 */
export async function createInternet(opts: { client?: TestNetns } = {}): Promise<Internet> {
  const madeClient = !opts.client;
  const internet = await createNetns();
  let client: TestNetns | undefined = opts.client;
  const procs: Subprocess[] = [];
  const tmp = mkdtempSync("/run/burrow-internet-");
  const dispose = async () => {
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.exited));
    await internet.remove();
    // A veth pair goes with either end's namespace; the client's own end
    // would otherwise stay in a context's netns (rootful).
    if (madeClient) await client?.remove();
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    client ??= await createNetns();
    const tag = crypto.randomUUID().slice(0, 6);
    const [cIf, iIf] = [`ic${tag}`, `ii${tag}`];
    await ok(["ip", "link", "add", cIf, "netns", client.name, "type", "veth", "peer", "name", iIf, "netns", internet.name]);
    await ok(["ip", "-n", client.name, "addr", "add", `${NET.client4}/24`, "dev", cIf]);
    await ok(["ip", "-n", client.name, "addr", "add", `${NET.client6}/64`, "dev", cIf, "nodad"]);
    await ok(["ip", "-n", internet.name, "addr", "add", `${NET.gateway4}/24`, "dev", iIf]);
    await ok(["ip", "-n", internet.name, "addr", "add", `${NET.gateway6}/64`, "dev", iIf, "nodad"]);
    for (const a of [NET.allowed4, NET.denied4, NET.dns4]) await ok(["ip", "-n", internet.name, "addr", "add", `${a}/32`, "dev", "lo"]);
    for (const a of [NET.allowed6, NET.denied6, NET.dns6]) await ok(["ip", "-n", internet.name, "addr", "add", `${a}/128`, "dev", "lo"]);
    await ok(["ip", "-n", client.name, "link", "set", cIf, "up"]);
    await ok(["ip", "-n", internet.name, "link", "set", iIf, "up"]);
    await ok(["ip", "-n", client.name, "route", "add", "default", "via", NET.gateway4, "dev", cIf]);
    await ok(["ip", "-n", client.name, "-6", "route", "add", "default", "via", NET.gateway6, "dev", cIf]);
    // slirp4netns and pasta send a sandbox's pings from ICMP datagram sockets
    // of the test user's: a new netns allows them to no group.
    await ok(["nsenter", `--net=${client.path}`, "--", "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]);

    const servers = Bun.spawn(
      ["nsenter", `--net=${internet.path}`, "--", PYTHON, "-c", SERVERS, [NET.allowed4, NET.denied4, NET.allowed6, NET.denied6].join(","), PORTS.join(",")],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: serviceEnv() },
    );
    procs.push(servers);
    const reader = servers.stdout.getReader();
    const first = await Promise.race([reader.read(), Bun.sleep(10_000).then(() => null)]);
    if (!first || first.done || !new TextDecoder().decode(first.value).startsWith("ready"))
      throw new Error(`the internet's servers did not start: ${servers.exitCode === null ? "no answer in 10 s" : await new Response(servers.stderr).text()}`);
    reader.releaseLock();

    const dnsmasq = Bun.spawn(["nsenter", `--net=${internet.path}`, "--", "dnsmasq", ...dnsmasqArgs(`${tmp}/dnsmasq.pid`)], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      env: serviceEnv(),
    });
    procs.push(dnsmasq);

    const self: Internet = {
      client,
      internet,
      burrow: (t, args, o) => burrowIn(self, t, args, o),
      async burrowOk(t, args, o) {
        const r = await burrowIn(self, t, args, o);
        if (r.code !== 0) throw new Error(`burrow ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
        return r.stdout;
      },
      async probe(t, runArgs, probes) {
        const r = await burrowIn(self, t, ["run", "--rm", "-i", ...runArgs, "--", ...probeArgv()], { stdin: probeInput(probes), timeoutMs: 60_000 });
        return probeResults(r, `burrow run ${runArgs.join(" ")}`);
      },
      async probeExec(t, name, probes) {
        const r = await burrowIn(self, t, ["exec", "-i", name, "--", ...probeArgv()], { stdin: probeInput(probes), timeoutMs: 60_000 });
        return probeResults(r, `burrow exec ${name}`);
      },
      async probeDirect(probes) {
        const r = await sh(["nsenter", `--net=${client!.path}`, "--", ...probeArgv()], { stdin: probeInput(probes) });
        return probeResults(r, "probes from the client netns");
      },
      dispose,
    };
    await until(
      async () => (await self.probeDirect([{ dns: "allowed.test", server: NET.dns4 }]))[0] === `NOERROR ${NET.allowed4}`,
      10_000,
      `dnsmasq to answer on ${NET.dns4}`,
    ).catch(async (e) => {
      throw new Error(
        `${(e as Error).message}${dnsmasq.exitCode !== null ? `; dnsmasq exited ${dnsmasq.exitCode}: ${await new Response(dnsmasq.stderr).text()}` : ""}`,
      );
    });
    // And over IPv6: the internet's end of the link ignores a neighbour
    // solicitation that comes within ~0.2 s of the link going up, and the
    // client asks again only after a second (tcpdump on both ends). A
    // sandbox's first IPv6 datagram then waited that second, and once all
    // three tries of a ping probe went unanswered in CI. Ready means the
    // client has its neighbour.
    await until(async () => (await self.probeDirect([{ ping: NET.allowed6 }]))[0] === "ok", 10_000, `a ping to ${NET.allowed6} from the client netns`);
    return self;
  } catch (e) {
    await dispose();
    throw e;
  }
}

/** burrow as the context's identity, inside the client netns. Rootless: root
 * enters the netns, then setpriv becomes the test user (as source-ip.test.ts
 * does); rootful: the context's netns is the client netns already. */
function burrowIn(net: Internet, t: BurrowContext, args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  if (t.mode === "rootful") return t.burrow(args, opts);
  const c = commandFor([burrowBin(), ...args], { mode: "rootless", dirs: t.dirs, env: { [TAG_VAR]: t.tag } });
  return sh(["nsenter", `--net=${net.client.path}`, "--", ...c.argv], { env: c.env, cwd: c.cwd, stdin: opts.stdin, timeoutMs: opts.timeoutMs });
}
