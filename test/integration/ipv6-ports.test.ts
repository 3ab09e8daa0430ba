// IPv6 published ports (issue 15 item 4), rootless, end to end: the
// builtin forwarder listens on IPv6 for `-p [::1]:P`, `-p [::]:P` and plain
// `-p P` (dual-stack), and reaches a sandbox that has IPv6 (slirp4netns
// enable_ipv6) over IPv6; one without IPv6 is still served, over IPv4.
// pasta forwards IPv6 itself. The server in the sandbox answers each
// connection with the peer address it sees.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect, isIPv6 } from "node:net";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { findNetavarkHelper } from "../../src/net/netavark/run.ts";
import { describeWhen, firstMissing } from "../helpers/requirements.ts";
import { until } from "../helpers/until.ts";

const hostIPv6 = () => {
  try {
    return readFileSync("/proc/net/if_inet6", "utf8").includes("00000000000000000000000000000001") ? null : "the host has no ::1";
  } catch {
    return "the host has no IPv6";
  }
};
const why = firstMissing(integrationUnavailable(), hostIPv6);
if (why) console.warn(`skipping the IPv6 port tests: ${why}`);

let nextPort = 30000 + Math.floor(Math.random() * 1000);
const hostPort = () => nextPort++;

/** Answers each connection on [::]:7000/tcp, and each datagram on [::]:7001/udp (IPv4 too), with the peer address it sees. */
const PEER_SERVER =
  'Bun.listen({ hostname: "::", port: 7000, socket: { open(s) { s.end(`${s.remoteAddress}\\n`); }, data() {} } }); Bun.udpSocket({ hostname: "::", port: 7001, socket: { data(s, _d, port, addr) { s.send(`${addr}\\n`, port, addr); } } });';

/** The line the server sends through host:port, or throws when the connection closes without one. */
function peerThrough(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let got = "";
    s.on("data", (d) => {
      got += d.toString();
    });
    s.on("close", () => (got.endsWith("\n") ? resolve(got.trim()) : reject(new Error(`no answer through ${host}:${port}`))));
    s.on("error", reject);
  });
}
/** The line the UDP server sends back through host:port (datagrams resent until one answer comes: UDP may drop the first). */
async function udpPeerThrough(host: string, port: number): Promise<string> {
  let got: string | null = null;
  const client = await Bun.udpSocket({
    hostname: isIPv6(host) ? "::" : "0.0.0.0",
    socket: {
      data(_s, d) {
        got ??= new TextDecoder().decode(d).trim();
      },
    },
  });
  try {
    return await until(
      () => {
        if (got === null) client.send("peer?", port, host);
        return got;
      },
      5000,
      `a datagram back through ${host}:${port}`,
    );
  } finally {
    client.close();
  }
}
const isRealIPv6 = (a: string) => isIPv6(a) && !a.toLowerCase().startsWith("::ffff:");

describeWhen(why)("IPv6 published ports (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(() => t.dispose());

  const serve = async (network: string, publish: string[]) =>
    (await t.burrowOk(["run", "-d", "--network", network, ...publish.flatMap((p) => ["-p", p]), "--", process.execPath, "-e", PEER_SERVER])).trim();

  test("slirp4netns with enable_ipv6: [::1] reaches the sandbox over IPv6, IPv4 clients over IPv4", async () => {
    const [v6, plain] = [hostPort(), hostPort()];
    const id = await serve("slirp4netns:enable_ipv6=true", [`[::1]:${v6}:7000`, `${plain}:7000`]);
    // slirp4netns's IPv6 address is SLAAC (fd00::/64): setup waits for it
    // (no duplicate address detection in the sandbox), so the first answer,
    // as soon as the server listens, already comes over IPv6 (it came over
    // IPv4 for the first 1-3 s before).
    const peer = await until(() => peerThrough("::1", v6), 10_000, "the server behind [::1]");
    expect(peer.startsWith("fd00:")).toBe(true);
    // The forwarder connects from inside the sandbox: the peer is the sandbox's own address.
    const own = (await t.burrowOk(["exec", id, "ip", "-6", "-o", "addr", "show", "scope", "global"])).match(/inet6 (fd00:[0-9a-f:]+)\//)?.[1];
    expect(peer).toBe(own!);
    // Plain -p is dual-stack: IPv6 clients over IPv6, IPv4 clients over IPv4.
    expect(await peerThrough("::1", plain)).toBe(own!);
    expect(await peerThrough("127.0.0.1", plain)).toBe("::ffff:10.0.2.100");
    await t.burrowOk(["rm", "-f", id]);
  });

  test("a sandbox without IPv6: -p [::1] still serves, over IPv4", async () => {
    const port = hostPort();
    const id = await serve("slirp4netns", [`[::1]:${port}:7000`]);
    expect(await until(() => peerThrough("::1", port), 10_000, "the server behind [::1]")).toBe("::ffff:10.0.2.100");
    await t.burrowOk(["rm", "-f", id]);
  });

  test("plain -p and [::] listen on IPv6 and IPv4; port and ps print IPv6 in brackets", async () => {
    const [plain, any] = [hostPort(), hostPort()];
    const id = await serve("slirp4netns", [`${plain}:7000`, `[::]:${any}:7000`]);
    for (const port of [plain, any]) {
      expect(await until(() => peerThrough("::1", port), 10_000, `the server behind [::1]:${port}`)).toBe("::ffff:10.0.2.100");
      expect(await peerThrough("127.0.0.1", port)).toBe("::ffff:10.0.2.100");
    }
    expect(await t.burrowOk(["port", id])).toBe(`7000/tcp -> 0.0.0.0:${plain}\n7000/tcp -> [::]:${any}\n`);
    expect((await t.burrowOk(["ps", "--format", "{{.Ports}}"])).trim()).toBe(`0.0.0.0:${plain}->7000/tcp, [::]:${any}->7000/tcp`);
    await t.burrowOk(["rm", "-f", id]);
  });

  test("pasta: [::1] reaches the sandbox over IPv6", async () => {
    const port = hostPort();
    const id = await serve("pasta", [`[::1]:${port}:7000`]);
    const peer = await until(() => peerThrough("::1", port), 10_000, "the server behind [::1]");
    expect(isRealIPv6(peer)).toBe(true);
    expect(await t.burrowOk(["port", id])).toBe(`7000/tcp -> [::1]:${port}\n`);
    await t.burrowOk(["rm", "-f", id]);
  });
});

describeWhen(why)("IPv6 published ports: a port taken on IPv6 only (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(() => t.dispose());

  for (const network of ["slirp4netns", "pasta"]) {
    test(`${network}: plain -p of a port another program holds on [::1] only is refused with the port named, leaving nothing`, async () => {
      const port = hostPort();
      const holder = Bun.listen({ hostname: "::1", port, socket: { data() {} } });
      try {
        const r = await t.burrow(["run", "--rm", "--network", network, "-p", `${port}:80`, "--", "true"]);
        expect(r.code).toBe(125);
        expect(r.stderr.trim()).toBe(`Error: host port ${port}/tcp is already in use on 0.0.0.0`);
        expect(await t.burrowOk(["ps", "-aq"])).toBe("");
      } finally {
        holder.stop(true);
      }
    });
  }
});

const noNetavark = () => (findNetavarkHelper("netavark") ? null : "netavark is not installed (apt-get install netavark aardvark-dns)");

/**
 * Connects from inside a sandbox to NAME:7000 over IPv6 (the name resolved
 * to its AAAA record through the sandbox's resolv.conf) and prints
 * "ADDRESS PEER": the address the name gave and the peer the server saw.
 */
const AAAA_CLIENT = (name: string) =>
  `const { address } = await require("node:dns").promises.lookup(${JSON.stringify(name)}, { family: 6 }); let got = ""; await new Promise((ok, no) => { const s = require("node:net").connect({ host: address, port: 7000 }); s.on("data", (d) => { got += d; }); s.on("close", ok); s.on("error", no); }); console.log(address, got.trim());`;

for (const backend of ["cni", "netavark"] as const) {
  describeWhen(why ?? (backend === "netavark" ? noNetavark() : null))(`IPv6 published ports on a bridge network (${backend}, rootless)`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext("rootless", { networkBackend: backend });
    });
    afterEach(() => t.dispose());

    const serve = async (network: string, publish: string[], name?: string) =>
      (
        await t.burrowOk([
          "run",
          "-d",
          ...(name ? ["--name", name] : []),
          "--network",
          network,
          ...publish.flatMap((p) => ["-p", p]),
          "--",
          process.execPath,
          "-e",
          PEER_SERVER,
        ])
      ).trim();
    /** The sandbox's addresses on its network, from inspect (podman v3's CNI view lists a dual-stack IPv6 address as secondary). */
    const addresses = async (id: string) => {
      const n = Object.values(JSON.parse(await t.burrowOk(["inspect", id]))[0].NetworkSettings.Networks)[0] as {
        IPAddress: string;
        GlobalIPv6Address: string;
        SecondaryIPv6Addresses?: string[];
      };
      return { v4: n.IPAddress, v6: n.GlobalIPv6Address || (n.SecondaryIPv6Addresses?.[0]?.split("/")[0] ?? "") };
    };

    test("network create --ipv6: [::1] and plain -p reach the sandbox over IPv6, IPv4 clients over IPv4", async () => {
      const [v6, plain, udp] = [hostPort(), hostPort(), hostPort()];
      await t.burrowOk(["network", "create", "--ipv6", "v6net"]);
      const net = JSON.parse(await t.burrowOk(["network", "ls", "--format", "json"])).find((n: { name: string }) => n.name === "v6net");
      // podman 4+ (and burrow on both backends): --ipv6 without --subnet adds a unique-local /64 beside an IPv4 subnet.
      expect(net.ipv6_enabled).toBe(true);
      const subnets = net.subnets.map((x: { subnet: string }) => x.subnet);
      expect(subnets.some((x: string) => /^fd[0-9a-f]{2}:.*\/64$/.test(x))).toBe(true);
      const id = await serve("v6net", [`[::1]:${v6}:7000`, `${plain}:7000`, `[::1]:${udp}:7001/udp`]);
      const own = await addresses(id);
      expect(isRealIPv6(own.v6)).toBe(true);
      // Fixed by the backend's address: no waiting for it (the first connection already goes over IPv6).
      expect(await until(() => peerThrough("::1", v6), 10_000, "the server behind [::1]")).toBe(own.v6);
      expect(await peerThrough("::1", plain)).toBe(own.v6);
      expect(await peerThrough("127.0.0.1", plain)).toBe(`::ffff:${own.v4}`);
      // UDP flows too: over IPv6 to the sandbox's IPv6 address.
      expect(await udpPeerThrough("::1", udp)).toBe(own.v6);
      expect(await t.burrowOk(["port", id])).toBe(`7000/tcp -> [::1]:${v6}\n7000/tcp -> 0.0.0.0:${plain}\n7001/udp -> [::1]:${udp}\n`);
      await t.burrowOk(["rm", "-f", id]);
      await t.burrowOk(["network", "rm", "v6net"]);
    });

    test("a bridge network without IPv6: -p [::1] still serves, over IPv4", async () => {
      const port = hostPort();
      await t.burrowOk(["network", "create", "v4net"]);
      const id = await serve("v4net", [`[::1]:${port}:7000`]);
      const own = await addresses(id);
      expect(own.v6).toBe("");
      expect(await until(() => peerThrough("::1", port), 10_000, "the server behind [::1]")).toBe(`::ffff:${own.v4}`);
      await t.burrowOk(["rm", "-f", id]);
      await t.burrowOk(["network", "rm", "v4net"]);
    });

    test("sandbox to sandbox over IPv6 by name (AAAA from the network's DNS)", async () => {
      await t.burrowOk(["network", "create", "--ipv6", "v6dns"]);
      const server = await serve("v6dns", [], "v6server");
      const own = await addresses(server);
      const r = await t.burrow(["run", "--rm", "--network", "v6dns", "--", process.execPath, "-e", AAAA_CLIENT("v6server")]);
      // dnsname's dnsmasq and aardvark-dns both answer AAAA for a sandbox's IPv6 address.
      expect(r.stderr).toBe("");
      const [address, peer] = r.stdout.trim().split(" ");
      expect(address).toBe(own.v6);
      expect(isRealIPv6(peer!)).toBe(true);
      await t.burrowOk(["rm", "-f", server]);
      await t.burrowOk(["network", "rm", "v6dns"]);
    });
  });
}

/** A client run with `bun -e` (in the test netns when rootful): prints the line the server sends through host:port, or nothing. */
const PEER_CLIENT = (host: string, port: number) =>
  `let got = ""; const s = require("node:net").connect({ host: ${JSON.stringify(host)}, port: ${port} }); s.setTimeout(3000, () => s.destroy()); s.on("data", (d) => { got += d; }); s.on("close", () => console.log(got.trim())); s.on("error", () => {});`;

/** The host's own IPv6 address in the rootful tests' netns (on a link of its own, as a host's interface). */
const NETNS_IPV6 = "fd99:15:4::1";

for (const backend of ["cni", "netavark"] as const) {
  describeWhen(why ?? (backend === "netavark" ? noNetavark() : null))(`IPv6 published ports on a bridge network (${backend}, rootful)`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext("rootful", { networkBackend: backend });
      for (const cmd of [
        // A veth pair with both ends here (no dummy module on every machine).
        ["ip", "link", "add", "host0", "type", "veth", "peer", "name", "host1"],
        ["ip", "link", "set", "host0", "up"],
        ["ip", "link", "set", "host1", "up"],
        ["ip", "addr", "add", `${NETNS_IPV6}/64`, "dev", "host0", "nodad"],
        ["ip", "addr", "add", "10.15.4.1/24", "dev", "host0"],
      ]) {
        const r = await t.run(cmd);
        expect(r.stderr).toBe("");
      }
    });
    afterEach(() => t.dispose());

    const peerIn = async (host: string, port: number) => (await t.run([process.execPath, "-e", PEER_CLIENT(host, port)])).stdout.trim();

    test("network create --ipv6: plain -p and [::] serve IPv6 clients over IPv6 (DNAT), IPv4 clients over IPv4", async () => {
      const [port, any] = [hostPort(), hostPort()];
      await t.burrowOk(["network", "create", "--ipv6", "v6root"]);
      const id = (
        await t.burrowOk(["run", "-d", "--network", "v6root", "-p", `${port}:7000`, "-p", `[::]:${any}:7000`, "--", process.execPath, "-e", PEER_SERVER])
      ).trim();
      const peer6 = await until(async () => (await peerIn(NETNS_IPV6, port)) || null, 10_000, `the server behind [${NETNS_IPV6}]:${port}`);
      // DNAT keeps the client's address: the server sees the host's own IPv6 address.
      expect(peer6).toBe(NETNS_IPV6);
      expect(await peerIn("10.15.4.1", port)).toBe("::ffff:10.15.4.1");
      // [::] is every address, IPv4 too, as rootless (before: netavark 1.4 made a rule for ::/128 that matched nothing).
      expect(await peerIn(NETNS_IPV6, any)).toBe(NETNS_IPV6);
      expect(await peerIn("10.15.4.1", any)).toBe("::ffff:10.15.4.1");
      expect(await t.burrowOk(["port", id])).toBe(`7000/tcp -> 0.0.0.0:${port}\n7000/tcp -> [::]:${any}\n`);
      await t.burrowOk(["rm", "-f", id]);
      await t.burrowOk(["network", "rm", "v6root"]);
    });

    /** The sandbox's IPv6 address on its network (podman v3's CNI view lists a dual-stack one as secondary). */
    const address6 = async (id: string) => {
      const n = Object.values(JSON.parse(await t.burrowOk(["inspect", id]))[0].NetworkSettings.Networks)[0] as {
        GlobalIPv6Address: string;
        SecondaryIPv6Addresses?: string[];
      };
      return n.GlobalIPv6Address || (n.SecondaryIPv6Addresses?.[0]?.split("/")[0] ?? "");
    };

    test("-p [::1]:P (and a random [::1] port) serves over IPv6: the forwarder, not a DNAT rule the kernel cannot route", async () => {
      const port = hostPort();
      await t.burrowOk(["network", "create", "--ipv6", "v6loop"]);
      const id = (
        await t.burrowOk(["run", "-d", "--network", "v6loop", "-p", `[::1]:${port}:7000`, "-p", "[::1]::7000", "--", process.execPath, "-e", PEER_SERVER])
      ).trim();
      const [fixed, random] = (await t.burrowOk(["port", id])).trim().split("\n");
      expect(fixed).toBe(`7000/tcp -> [::1]:${port}`);
      const randomPort = Number(random!.match(/^7000\/tcp -> \[::1\]:(\d+)$/)?.[1]);
      expect(randomPort).toBeGreaterThan(0);
      // ps brackets IPv6 as port does; inspect's HostIp is podman's JSON, unbracketed.
      expect((await t.burrowOk(["ps", "--format", "{{.Ports}}"])).trim()).toBe(`[::1]:${port}->7000/tcp, [::1]:${randomPort}->7000/tcp`);
      expect(JSON.parse(await t.burrowOk(["inspect", id]))[0].NetworkSettings.Ports["7000/tcp"]).toEqual([
        { HostIp: "::1", HostPort: `${port}` },
        { HostIp: "::1", HostPort: `${randomPort}` },
      ]);
      const own = await address6(id);
      expect(isRealIPv6(own)).toBe(true);
      // Before: a DNAT rule for ::1 that the kernel drops (no route_localnet for IPv6), and the client timed out.
      expect(await until(async () => (await peerIn("::1", port)) || null, 10_000, `the server behind [::1]:${port}`)).toBe(own);
      expect(await peerIn("::1", randomPort)).toBe(own);
      const nat = (await t.run(["ip6tables-save", "-t", "nat"])).stdout;
      expect(nat).not.toContain(`${port}`);
      // A daemon killed -9 (its supervisor starts another) opens them again.
      const [daemon] = daemonPids(t);
      process.kill(daemon!, "SIGKILL");
      expect(await until(async () => (await peerIn("::1", port)) || null, 10_000, `the server behind [::1]:${port} after kill -9 of the daemon`)).toBe(own);
      expect(await peerIn("::1", randomPort)).toBe(own);
      // The forwarder's, so `port rm` removes it as one `port add` gave (before: refused as "published when it started").
      expect(await t.burrowOk(["port", "rm", id, String(port)])).toBe(`7000/tcp -> [::1]:${port}\n`);
      expect(await peerIn("::1", port)).toBe("");
      expect(await peerIn("::1", randomPort)).toBe(own);
      expect(await t.burrowOk(["port", id])).toBe(`7000/tcp -> [::1]:${randomPort}\n`);
      await t.burrowOk(["rm", "-f", id]);
      await t.burrowOk(["network", "rm", "v6loop"]);
    });

    test("disconnecting the primary network: a [::1] port follows the sandbox to its address on the next one", async () => {
      const port = hostPort();
      await t.burrowOk(["network", "create", "--ipv6", "first6"]);
      await t.burrowOk(["network", "create", "--ipv6", "second6"]);
      const id = (await t.burrowOk(["run", "-d", "--network", "first6,second6", "-p", `[::1]:${port}:7000`, "--", process.execPath, "-e", PEER_SERVER])).trim();
      const before = await address6(id);
      expect(await until(async () => (await peerIn("::1", port)) || null, 10_000, `the server behind [::1]:${port}`)).toBe(before);
      await t.burrowOk(["network", "disconnect", "first6", id]);
      const after = await address6(id);
      expect(isRealIPv6(after)).toBe(true);
      expect(after).not.toBe(before);
      expect(await peerIn("::1", port)).toBe(after);
      await t.burrowOk(["rm", "-f", id]);
      await t.burrowOk(["network", "rm", "first6", "second6"]);
    });

    test("a network without IPv6: -p [::1]:P still serves, over IPv4", async () => {
      const port = hostPort();
      await t.burrowOk(["network", "create", "v4loop"]);
      const id = (await t.burrowOk(["run", "-d", "--network", "v4loop", "-p", `[::1]:${port}:7000`, "--", process.execPath, "-e", PEER_SERVER])).trim();
      expect(await address6(id)).toBe("");
      const peer = await until(async () => (await peerIn("::1", port)) || null, 10_000, `the server behind [::1]:${port}`);
      expect(peer.startsWith("::ffff:10.")).toBe(true);
      await t.burrowOk(["rm", "-f", id]);
      await t.burrowOk(["network", "rm", "v4loop"]);
    });
  });
}
