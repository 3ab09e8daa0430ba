// The client's real address behind a published port (issue 15 item 3), end
// to end from the built binary. The client never runs in the host's
// network: the test makes a client netns and a server netns joined by a
// veth pair (client 10.77.0.2, server 10.77.0.1). Rootless, the test user's
// burrow runs inside the server netns, so its daemon publishes the port
// there; rootful, the context's own netns is the server netns. A TCP server
// in the sandbox answers each connection with the peer address it sees.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { findNetavarkHelper } from "../../src/net/netavark/run.ts";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { burrowBin, integrationUnavailable, TAG_VAR } from "../helpers/env.ts";
import { createNetns, type TestNetns } from "../helpers/netns.ts";
import { describeWhen, firstMissing, missingTools } from "../helpers/requirements.ts";
import { commandFor, type RunResult } from "../helpers/run.ts";
import { until } from "../helpers/until.ts";

const PYTHON = "/usr/bin/python3";
const why = firstMissing(
  integrationUnavailable(),
  () => missingTools(["slirp4netns", "pasta", "nsenter", "ip"]),
  () => (Bun.file(PYTHON).size > 0 ? null : `no ${PYTHON}`),
);
if (why) console.warn(`skipping the client-address tests: ${why}`);

const CLIENT = "10.77.0.2";
const SERVER = "10.77.0.1";
const CLIENT6 = "fd77::2";
const SERVER6 = "fd77::1";
/** What the dual-stack server prints for an IPv4 peer. */
const v4 = (ip: string) => `::ffff:${ip}`;
const PORT = 18080;

/**
 * Answers each TCP connection on [::]:7000 (IPv4 too, as ::ffff:a.b.c.d)
 * with the peer address it sees, once the client has said something: the client speaks first, as in
 * HTTP. (Debian 12's pasta 2023 holds a server's first bytes to a
 * non-loopback client until the client sends: a server-first protocol
 * stalls there, with or without burrow; see docs/decisions.md.)
 */
const PEER_SERVER = `
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 7000))
s.listen(64)
while True:
    c, a = s.accept()
    c.recv(64)
    c.sendall((a[0] + "\\n").encode())
    c.close()
`;

/** Connects to host:port and prints the line it gets; exits 1 when it gets none. */
const PEER_CLIENT = `
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    c.sendall(b"peer?\\n")
    print(c.makefile().readline().strip() or "none")
except OSError as e:
    print("error", e)
    sys.exit(1)
`;

async function sh(argv: string[]): Promise<RunResult> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr, timedOut: false };
}

async function ok(argv: string[]): Promise<string> {
  const r = await sh(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The peer address the sandbox's server reports for a connection from inside `from` to host:port. */
async function peerSeen(from: TestNetns, host: string, port = PORT): Promise<string> {
  const r = await sh(["nsenter", `--net=${from.path}`, "--", PYTHON, "-c", PEER_CLIENT, host, String(port)]);
  if (r.code !== 0) throw new Error(`no answer through ${host}:${port} from ${from.name}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/**
 * Whether the sandbox's server answers a client yet: a forwarder that
 * accepts before the server listens (pasta does) closes the connection
 * without a line.
 */
async function answered(from: TestNetns): Promise<boolean> {
  const seen = await peerSeen(from, SERVER).catch(() => "none");
  return /^[0-9a-f.:]+$/.test(seen);
}

/** Joins the two with a veth pair: CLIENT and CLIENT6, SERVER and SERVER6 (and a default route there, which pasta needs to start). */
async function link(client: TestNetns, server: TestNetns): Promise<void> {
  const tag = crypto.randomUUID().slice(0, 6);
  await ok(["ip", "link", "add", `sc${tag}`, "netns", client.name, "type", "veth", "peer", "name", `ss${tag}`, "netns", server.name]);
  await ok(["ip", "-n", client.name, "addr", "add", `${CLIENT}/24`, "dev", `sc${tag}`]);
  await ok(["ip", "-n", server.name, "addr", "add", `${SERVER}/24`, "dev", `ss${tag}`]);
  await ok(["ip", "-n", client.name, "addr", "add", `${CLIENT6}/64`, "dev", `sc${tag}`, "nodad"]);
  await ok(["ip", "-n", server.name, "addr", "add", `${SERVER6}/64`, "dev", `ss${tag}`, "nodad"]);
  await ok(["ip", "-n", client.name, "link", "set", `sc${tag}`, "up"]);
  await ok(["ip", "-n", server.name, "link", "set", `ss${tag}`, "up"]);
  // Not the client: pasta maps its gateway's address.
  await ok(["ip", "-n", server.name, "route", "add", "default", "via", "10.77.0.254", "dev", `ss${tag}`]);
}

type SourceEntry = { HostIp: string; HostPort: string; SourceAddress: string; Why?: string };

describeWhen(why)("the client's address behind a published port, rootless", () => {
  // Bridge networks here are CNI's (the context's default); the netavark block below runs the bridge case on netavark.
  let t: BurrowContext;
  let client: TestNetns;
  let server: TestNetns;

  beforeEach(async () => {
    t = await burrowContext("rootless");
    client = await createNetns();
    server = await createNetns();
    await link(client, server);
  });

  afterEach(async () => {
    try {
      await t.dispose();
    } finally {
      await client.remove();
      await server.remove();
    }
  });

  /** `burrow ARGS` as the test user, inside the server netns (its daemon binds the host ports there). */
  function burrowInServer(args: string[]): Promise<RunResult> {
    const c = commandFor([burrowBin(), ...args], { mode: "rootless", dirs: t.dirs, env: { [TAG_VAR]: t.tag } });
    const p = Bun.spawn(["nsenter", `--net=${server.path}`, "--", ...c.argv], { env: c.env, cwd: c.cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    return Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(([stdout, stderr, code]) => ({
      code,
      stdout,
      stderr,
      timedOut: false,
    }));
  }

  async function burrowOkInServer(args: string[]): Promise<string> {
    const r = await burrowInServer(args);
    if (r.code !== 0) throw new Error(`burrow ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /** Starts the peer server in a sandbox on `network` with -p PORT:7000 and waits until a client gets an answer. */
  async function serve(network: string, extra: string[] = []): Promise<void> {
    await burrowOkInServer(["run", "-d", "--name", "web", "--network", network, "-p", `${PORT}:7000`, ...extra, "--", PYTHON, "-c", PEER_SERVER]);
    await until(() => answered(client), 15_000, "the server in the sandbox to answer through the published port");
  }

  async function sourceAddresses(): Promise<SourceEntry[]> {
    const out = await burrowOkInServer(["inspect", "--format", '{{json (index .NetworkSettings.SourceAddresses "7000/tcp")}}', "web"]);
    return JSON.parse(out);
  }

  async function stop(): Promise<void> {
    await burrowOkInServer(["rm", "-f", "web"]);
  }

  test("slirp4netns: the sandbox sees the client netns's address; a loopback client still comes in as the sandbox's own address", async () => {
    await serve("slirp4netns");
    expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    // Loopback clients keep today's path (the forwarder connects from the sandbox's own address).
    expect(await peerSeen(server, "127.0.0.1")).toBe(v4("10.0.2.100"));
    // Many connections in a row: each goes in as the client (a new client port each time).
    for (let i = 0; i < 20; i++) expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    expect(await sourceAddresses()).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "client" }]);
    // A daemon killed with -9 is started again and publishes the port again, the same way.
    const [daemon] = daemonPids(t);
    expect(daemon).toBeNumber();
    process.kill(daemon!, "SIGKILL");
    await until(() => !daemonPids(t).includes(daemon!), 5_000, "the killed daemon to be gone");
    await until(
      async () => (await peerSeen(client, SERVER).catch(() => "")) === v4(CLIENT),
      15_000,
      "the restarted daemon to serve the port with the client's address",
    );
    await stop();
  });

  test("slirp4netns with an egress policy: the forwarder's client-address connections are not taken for forged sources on the sandbox's loopback", async () => {
    // An allow rule (so everything else is refused) that covers neither the client nor the host.
    await serve("slirp4netns", ["--allow-cidr", "198.51.100.10"]);
    for (let i = 0; i < 5; i++) expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    expect(await peerSeen(server, "127.0.0.1")).toBe(v4("10.0.2.100"));
    expect(await sourceAddresses()).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "client" }]);
    await stop();
  });

  test("slirp4netns with IPv6: an IPv6 client is seen at its IPv6 address, an IPv4 one at its IPv4 address", async () => {
    await serve("slirp4netns:enable_ipv6=true");
    // The sandbox's IPv6 address comes by SLAAC: until it is there, IPv6 clients are forwarded over IPv4.
    await until(async () => (await peerSeen(client, SERVER6).catch(() => "")) === CLIENT6, 15_000, "an IPv6 client to be seen as itself");
    expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    expect(await sourceAddresses()).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "client" }]);
    await stop();
  });

  test("info says once whether this kernel can keep client addresses", async () => {
    const info = JSON.parse(await burrowOkInServer(["info", "--format", "json"]));
    const feature = info.Host.KernelFeatures.find((f: { Name: string }) => f.Name === "client address on published ports");
    expect(feature).toEqual({
      Name: "client address on published ports",
      Available: true,
      Detail: expect.stringContaining("source_ip=false turns it off"),
    });
  });

  test("slirp4netns:source_ip=false gives today's address, and inspect says why", async () => {
    await serve("slirp4netns:source_ip=false");
    expect(await peerSeen(client, SERVER)).toBe(v4("10.0.2.100"));
    expect(await sourceAddresses()).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "forwarder", Why: "turned off (source_ip=false)" }]);
    await stop();
  });

  test("a bad source_ip value is refused in one line, exit 125, and nothing is made", async () => {
    const r = await burrowInServer(["run", "--rm", "--network", "slirp4netns:source_ip=yes", "-p", `${PORT}:7000`, "--", "true"]);
    expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({
      code: 125,
      stderr: 'Error: invalid slirp4netns option source_ip="yes": accepted values are true or false',
    });
    expect((await burrowOkInServer(["ps", "-a", "--format", "{{.Names}}"])).trim()).toBe("");
  });

  test("a rootless bridge network: the sandbox sees the client netns's address", async () => {
    await serve("bridge");
    expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    expect(await sourceAddresses()).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "client" }]);
    await stop();
  });

  test("pasta: its own forwarding keeps the client's address (nothing of burrow's in the path)", async () => {
    await serve("pasta");
    expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    expect(await sourceAddresses()).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "client" }]);
    await stop();
  });
});

describeWhen(why)("the client's address behind a published port, rootful bridge (portmap's DNAT)", () => {
  let t: BurrowContext;
  let client: TestNetns;

  beforeEach(async () => {
    t = await burrowContext("rootful");
    client = await createNetns();
    await link(client, t.netns!);
  });

  afterEach(async () => {
    try {
      await t.dispose();
    } finally {
      await client.remove();
    }
  });

  test("the sandbox sees the client netns's address, unchanged by burrow", async () => {
    await t.burrowOk(["run", "-d", "--name", "web", "--network", "bridge", "-p", `${PORT}:7000`, "--", PYTHON, "-c", PEER_SERVER]);
    await until(() => answered(client), 15_000, "the server in the sandbox to answer through the published port");
    expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    const out = await t.burrowOk(["inspect", "--format", '{{json (index .NetworkSettings.SourceAddresses "7000/tcp")}}', "web"]);
    expect(JSON.parse(out)).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "client" }]);
    await t.burrowOk(["rm", "-f", "web"]);
  });
});

const whyNetavark = why ?? (findNetavarkHelper("netavark") ? null : "netavark is not installed (apt-get install netavark aardvark-dns)");
describeWhen(whyNetavark)("the client's address behind a published port, netavark bridges", () => {
  let t: BurrowContext;
  let client: TestNetns;
  let server: TestNetns | undefined;

  afterEach(async () => {
    try {
      await t.dispose();
    } finally {
      await client.remove();
      await server?.remove();
    }
  });

  test("rootless: the builtin forwarder hands the sandbox the client netns's address", async () => {
    t = await burrowContext("rootless", { networkBackend: "netavark" });
    client = await createNetns();
    server = await createNetns();
    await link(client, server);
    const inServer = async (args: string[]) => {
      const c = commandFor([burrowBin(), ...args], { mode: "rootless", dirs: t.dirs, env: { [TAG_VAR]: t.tag } });
      const r = await sh(["nsenter", `--net=${server!.path}`, "--", "env", "-i", ...Object.entries(c.env).map(([k, v]) => `${k}=${v}`), ...c.argv]);
      if (r.code !== 0) throw new Error(`burrow ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
      return r.stdout;
    };
    await inServer(["run", "-d", "--name", "web", "--network", "bridge", "-p", `${PORT}:7000`, "--", PYTHON, "-c", PEER_SERVER]);
    await until(() => answered(client), 15_000, "the server in the sandbox to answer through the published port");
    expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    const out = await inServer(["inspect", "--format", '{{json (index .NetworkSettings.SourceAddresses "7000/tcp")}}', "web"]);
    expect(JSON.parse(out)).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "client" }]);
    await inServer(["rm", "-f", "web"]);
  });

  test("rootful: netavark's DNAT keeps the client netns's address, unchanged by burrow", async () => {
    t = await burrowContext("rootful", { networkBackend: "netavark" });
    client = await createNetns();
    server = undefined;
    await link(client, t.netns!);
    await t.burrowOk(["run", "-d", "--name", "web", "--network", "bridge", "-p", `${PORT}:7000`, "--", PYTHON, "-c", PEER_SERVER]);
    await until(() => answered(client), 15_000, "the server in the sandbox to answer through the published port");
    expect(await peerSeen(client, SERVER)).toBe(v4(CLIENT));
    const out = await t.burrowOk(["inspect", "--format", '{{json (index .NetworkSettings.SourceAddresses "7000/tcp")}}', "web"]);
    expect(JSON.parse(out)).toEqual([{ HostIp: "", HostPort: String(PORT), SourceAddress: "client" }]);
    await t.burrowOk(["rm", "-f", "web"]);
  });
});
