// Bridge networks (CNI) end to end: dist/burrow with Debian's real plugins
// (bridge, host-local, portmap, firewall, tuning, dnsname + dnsmasq).
// Rootless as the test user: the plugins run in the rootless CNI namespace.
// Rootful as root inside a test netns: the bridge, veths, dnsmasq and
// iptables rules exist only there. Traffic goes only to loopback and to the
// sandboxes; every test ends with the context's leak check.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, testUser } from "../helpers/env.ts";
import { listPids } from "../helpers/netns.ts";
import { until } from "../helpers/until.ts";
import { describeWhen } from "../helpers/requirements.ts";
import { fetchFromHost, inspect } from "../helpers/published.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping bridge network integration tests: ${why}`);

// Below the ephemeral range (32768-60999 here: an outgoing connection may take such a port
// at any time) and apart from the other files' ranges.
let nextPort = 20000 + Math.floor(Math.random() * 3000);
const hostPort = () => nextPort++;

/** A file the sandbox (as the context's identity) can read. */
function ownFile(t: BurrowContext, path: string, content: string): void {
  writeFileSync(path, content);
  if (t.mode === "rootless") chownSync(path, testUser().uid, testUser().gid);
}

/** A detached sandbox serving its own name over HTTP on :8080 (busybox httpd). */
async function webSandbox(t: BurrowContext, name: string, args: string[]): Promise<string> {
  const dir = `${t.dirs.root}/www-${name}`;
  mkdirSync(dir, { recursive: true });
  if (t.mode === "rootless") chownSync(dir, testUser().uid, testUser().gid);
  ownFile(t, `${dir}/index.html`, `${name}\n`);
  const id = (await t.burrowOk(["run", "-d", "--name", name, ...args, "--", "busybox", "httpd", "-f", "-p", "8080", "-h", dir])).trim();
  expect(id).toMatch(/^[0-9a-f]{64}$/);
  return id;
}

/** curl from inside sandbox `from` (the host's curl: the host fs is visible).
 * Debian's static busybox 1.35 wget segfaults with -T, so no wget. */
async function curlFrom(t: BurrowContext, from: string, url: string, maxTime = 2) {
  return t.burrow(["exec", from, "--", "curl", "-sS", "--max-time", String(maxTime), url], { timeoutMs: 15000 });
}

/** The body, or null when the fetch fails. */
async function fetchFrom(t: BurrowContext, from: string, url: string, maxTime = 2): Promise<string | null> {
  const r = await curlFrom(t, from, url, maxTime);
  return r.code === 0 ? r.stdout : null;
}

/** A fetch that should fail: a shorter wait (names nobody knows wait for the upstream resolver). */
const unreachable = (t: BurrowContext, from: string, url: string) => fetchFrom(t, from, url, 1);

/** Retries until the fetch succeeds (a server takes a moment to listen). */
function reach(t: BurrowContext, from: string, url: string): Promise<string> {
  return until(() => fetchFrom(t, from, url), 10000, `${from} -> ${url}`);
}

/** From the "host": the test process itself (rootless: the daemon listens in
 * the host netns) or, rootful, curl inside the test netns. */

interface Link {
  ifname: string;
  address?: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}
/** `ip -j addr` inside the sandbox: interface name -> { mac, ipv4 "a.b.c.d/n" }. */
async function links(t: BurrowContext, name: string): Promise<Record<string, { mac?: string; ipv4: string[] }>> {
  const out: Link[] = JSON.parse(await t.burrowOk(["exec", name, "--", "ip", "-j", "addr", "show"]));
  return Object.fromEntries(
    out.map((l) => [l.ifname, { mac: l.address, ipv4: (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`) }]),
  );
}

/** Runs `cmd` (an iptables invocation) in the namespace where this mode's CNI rules live. */
function inCniNetns(t: BurrowContext, cmd: string[]) {
  if (t.mode === "rootful") return t.run(cmd);
  // The rootless CNI namespace's pin exists only in the holder's mount namespace.
  return t.burrow(["unshare", "--", "nsenter", `--net=${t.dirs.runtimeDir}/rootless-netns/net`, "--", ...cmd]);
}

/**
 * The iptables command of the namespace where this mode's CNI rules live:
 * rootful the host's (a test netns); rootless iptables-legacy once burrow
 * chose it for its own namespace (src/net/cni/rootless-netns.ts
 * chooseFirewall), with the lock file its plugins use (legacy takes one in
 * /run, which is the runner's own there and root's here).
 */
function cniIptables(t: BurrowContext): string[] {
  const ns = `${t.dirs.runtimeDir}/rootless-netns`;
  if (t.mode === "rootless" && existsSync(`${ns}/firewall`)) return ["env", `XTABLES_LOCKFILE=${ns}/run/xtables.lock`, "/usr/sbin/iptables-legacy"];
  return ["/usr/sbin/iptables"];
}

/** Processes whose command line names this context's dirs (slirp4netns, dnsmasq, httpd, ...). */
function processesOf(t: BurrowContext, pattern: RegExp): string[] {
  return listPids().flatMap((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      return pattern.test(cmd) && cmd.includes(t.dirs.root) ? [cmd] : [];
    } catch {
      return [];
    }
  });
}

for (const mode of ["rootless", "rootful"] as const) {
  describeWhen(why)(`bridge networks (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("two sandboxes on one network reach each other by IP, name, alias and short id; a used network cannot be removed", async () => {
      expect(await t.burrowOk(["network", "create", "net1"])).toBe("net1\n");
      // started together: the first one up makes the rootless CNI namespace, the other waits for it
      const [aId, bId] = await Promise.all([
        webSandbox(t, "a", ["--network", "net1", "--network-alias", "web", "--network-alias", "www"]),
        webSandbox(t, "b", ["--network", "net1"]),
      ]);

      const a = await inspect(t, "a");
      const net = a.NetworkSettings.Networks.net1;
      expect(Object.keys(a.NetworkSettings.Networks)).toEqual(["net1"]);
      expect(net.NetworkID).toBe("net1");
      expect(net.IPAddress).toMatch(/^10\.89\.\d+\.\d+$/);
      expect(net.IPPrefixLen).toBe(24);
      expect(net.Gateway).toBe(net.IPAddress.replace(/\.\d+$/, ".1"));
      expect(net.MacAddress).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      expect([...net.Aliases].sort()).toEqual(["a", aId.slice(0, 12), "web", "www"].sort());
      const b = (await inspect(t, "b")).NetworkSettings.Networks.net1;
      expect([...b.Aliases].sort()).toEqual(["b", bId.slice(0, 12)].sort());
      // inspect agrees with the sandbox's own interface
      expect((await links(t, "a")).eth0).toEqual({ mac: net.MacAddress, ipv4: [`${net.IPAddress}/24`] });

      for (const host of [net.IPAddress, "a", "web", "www", aId.slice(0, 12), "a.dns.burrow"]) expect(await reach(t, "b", `http://${host}:8080/`)).toBe("a\n");
      expect(await reach(t, "a", `http://b:8080/`)).toBe("b\n");
      expect(await reach(t, "a", `http://${bId.slice(0, 12)}:8080/`)).toBe("b\n");

      // DNS: the gateway (dnsname's dnsmasq) first, and the search domain
      const resolv = (await t.burrowOk(["exec", "b", "--", "cat", "/etc/resolv.conf"])).split("\n");
      expect(resolv.filter((l) => l.startsWith("nameserver"))[0]).toBe(`nameserver ${net.Gateway}`);
      expect(resolv).toContain("search dns.burrow");
      expect(await t.burrowOk(["exec", "a", "--", "cat", "/etc/hosts"])).toMatch(new RegExp(`^${net.IPAddress.replace(/\./g, "\\.")}\\s+a\\b`, "m"));

      const rm = await t.burrow(["network", "rm", "net1"]);
      expect(rm.code).toBe(125);
      expect(rm.stderr).toContain("net1");
      expect(rm.stderr).toMatch(/used by sandboxes a, b|used by sandboxes b, a/);
      expect(await t.burrowOk(["network", "ls", "--quiet"])).toContain("net1");

      // a foreground sandbox on the same network, gone with its command
      const fg = await t.burrow(["run", "--rm", "--network", "net1", "--", "curl", "-sS", "--max-time", "5", "http://web:8080/"]);
      expect(fg).toMatchObject({ code: 0, stdout: "a\n" });

      // both stopped at once: each release must leave the other's alone
      await Promise.all([t.burrowOk(["stop", "a"]), t.burrowOk(["stop", "b"])]);
      if (mode === "rootless") {
        // the rootless CNI namespace, its slirp4netns and dnsmasq went with the last bridge sandbox
        expect(existsSync(`${t.dirs.runtimeDir}/rootless-netns`)).toBe(false);
        expect(processesOf(t, /slirp4netns|dnsmasq/)).toEqual([]);
      }
      // stopped sandboxes still name the network
      expect((await t.burrow(["network", "rm", "net1"])).code).toBe(125);
      await t.burrowOk(["rm", "a", "b"]);
      expect(await t.burrowOk(["network", "rm", "net1"])).toBe("net1\n");
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    }, 60000);

    test("a sandbox on two networks has eth0 and eth1 with the right addresses", async () => {
      await t.burrowOk(["network", "create", "--subnet", "10.89.30.0/24", "front"]);
      await t.burrowOk(["network", "create", "--subnet", "10.89.31.0/24", "back"]);
      await webSandbox(t, "both", ["--network", "front,back"]);
      await webSandbox(t, "onlyback", ["--network", "back"]);
      const nets = (await inspect(t, "both")).NetworkSettings.Networks;
      expect(Object.keys(nets).sort()).toEqual(["back", "front"]);
      expect(nets.front.IPAddress).toMatch(/^10\.89\.30\.\d+$/);
      expect(nets.back.IPAddress).toMatch(/^10\.89\.31\.\d+$/);
      expect(nets.front.Gateway).toBe("10.89.30.1");
      expect(nets.back.Gateway).toBe("10.89.31.1");
      const l = await links(t, "both");
      expect(l.eth0).toEqual({ mac: nets.front.MacAddress, ipv4: [`${nets.front.IPAddress}/24`] });
      expect(l.eth1).toEqual({ mac: nets.back.MacAddress, ipv4: [`${nets.back.IPAddress}/24`] });
      // both networks' DNS servers, the first network's first
      const ns = (await t.burrowOk(["exec", "both", "--", "cat", "/etc/resolv.conf"])).split("\n").filter((x) => x.startsWith("nameserver"));
      expect(ns.slice(0, 2)).toEqual(["nameserver 10.89.30.1", "nameserver 10.89.31.1"]);
      // onlyback finds it by name through back's DNS, and reaches it on eth1.
      // (The other way round needs front's dnsmasq to know back's names:
      // dnsname answers NXDOMAIN for dns.burrow names it does not have.)
      expect(await reach(t, "onlyback", "http://both:8080/")).toBe("both\n");
      const onlyback = (await inspect(t, "onlyback")).NetworkSettings.Networks.back.IPAddress;
      expect(await reach(t, "both", `http://${onlyback}:8080/`)).toBe("onlyback\n");
      await t.burrowOk(["rm", "-f", "both", "onlyback"]);
    }, 60000);

    test("a static IP and MAC are honoured; a taken IP is refused and rolled back", async () => {
      await t.burrowOk(["network", "create", "--subnet", "10.89.40.0/24", "fixed"]);
      const s1Id = (
        await t.burrowOk(["run", "-d", "--name", "s1", "--network", "fixed", "--ip", "10.89.40.50", "--mac-address", "92:d0:c6:0a:29:33", "--", "sleep", "300"])
      ).trim();
      // tuning keeps the interface's old settings to restore on DEL: as root
      // in the host's /run (rootless, in the rootless namespace's private /run)
      const tuningBackup = `/run/cni/tuning/${s1Id}_eth0.json`;
      if (mode === "rootful") expect(existsSync(tuningBackup)).toBe(true);
      const n = (await inspect(t, "s1")).NetworkSettings.Networks.fixed;
      expect(n.IPAddress).toBe("10.89.40.50");
      expect(n.MacAddress).toBe("92:d0:c6:0a:29:33");
      expect((await links(t, "s1")).eth0).toEqual({ mac: "92:d0:c6:0a:29:33", ipv4: ["10.89.40.50/24"] });

      const taken = await t.burrow(["run", "-d", "--name", "s2", "--network", "fixed", "--ip", "10.89.40.50", "--", "sleep", "300"]);
      expect(taken.code).toBe(125);
      expect(taken.stderr).toContain("10.89.40.50");
      // the plugin's own words (host-local, delegated to by bridge)
      expect(taken.stderr).toContain("requested IP address 10.89.40.50 is not available");
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])).map((s: { Names: string[] }) => s.Names[0])).toEqual(["s1"]);
      // the refused sandbox's name is free again, and s1 keeps its address
      await t.burrowOk(["run", "-d", "--name", "s2", "--network", "fixed", "--", "sleep", "300"]);
      const s2 = (await inspect(t, "s2")).NetworkSettings.Networks.fixed;
      expect(s2.IPAddress).toMatch(/^10\.89\.40\.\d+$/);
      expect(s2.IPAddress).not.toBe("10.89.40.50");
      await t.burrowOk(["rm", "-f", "s1", "s2"]);
      expect(existsSync(tuningBackup)).toBe(false);
    }, 60000);

    test("a published port reaches a bridge sandbox from the host", async () => {
      const port = hostPort();
      // rootful, the default network mode is the bridge network (as podman's)
      await webSandbox(t, "pub", [...(mode === "rootful" ? [] : ["--network", "bridge"]), "-p", `${port}:8080`]);
      expect(await until(() => fetchFromHost(t, port), 10000, `host -> :${port}`)).toBe("pub\n");
      expect(await t.burrowOk(["port", "pub"])).toBe(`8080/tcp -> 0.0.0.0:${port}\n`);
      const ins = await inspect(t, "pub");
      expect(ins.NetworkSettings.Ports["8080/tcp"]).toEqual([{ HostIp: "", HostPort: String(port) }]);
      expect(Object.keys(ins.NetworkSettings.Networks)).toEqual(["burrow"]);
      expect(ins.NetworkSettings.Networks.burrow.IPAddress).toMatch(/^10\.89\.0\.\d+$/);
      // the default network has no DNS (like podman's): no gateway nameserver, no search domain
      const resolv = await t.burrowOk(["exec", "pub", "--", "cat", "/etc/resolv.conf"]);
      expect(resolv).not.toContain("nameserver 10.89.0.1");
      expect(resolv).not.toContain("dns.burrow");
      // the port is taken while pub has it (rootful too, where portmap's DNAT alone would not say so)
      const again = await t.burrow(["run", "-d", "--name", "pub2", "--network", "bridge", "-p", `${port}:8080`, "--", "sleep", "300"]);
      expect(again.code).toBe(125);
      expect(again.stderr).toContain(`host port ${port}/tcp is already in use`);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])).map((x: { Names: string[] }) => x.Names[0])).toEqual(["pub"]);
      expect(await fetchFromHost(t, port)).toBe("pub\n");
      await t.burrowOk(["rm", "-f", "pub"]);
      expect(await fetchFromHost(t, port)).toBeNull();
    }, 60000);

    test("connect then disconnect on a running sandbox changes reachability", async () => {
      await t.burrowOk(["network", "create", "--subnet", "10.89.50.0/24", "red"]);
      await t.burrowOk(["network", "create", "--subnet", "10.89.51.0/24", "blue"]);
      await webSandbox(t, "r", ["--network", "red"]);
      const bId = await webSandbox(t, "b", ["--network", "blue"]);
      await reach(t, "r", "http://r:8080/");
      await reach(t, "b", "http://b:8080/");
      // different networks: r's DNS does not know b
      expect(await unreachable(t, "r", "http://b:8080/")).toBeNull();

      expect(await t.burrow(["network", "connect", "--alias", "bee", "red", "b"])).toMatchObject({ code: 0 });
      const nets = (await inspect(t, "b")).NetworkSettings.Networks;
      expect(Object.keys(nets).sort()).toEqual(["blue", "red"]);
      expect(nets.red.IPAddress).toMatch(/^10\.89\.50\.\d+$/);
      expect([...nets.red.Aliases].sort()).toEqual(["b", "bee", bId.slice(0, 12)].sort());
      const l = await links(t, "b");
      expect(l.eth1).toEqual({ mac: nets.red.MacAddress, ipv4: [`${nets.red.IPAddress}/24`] });
      for (const host of ["b", "bee", nets.red.IPAddress]) expect(await reach(t, "r", `http://${host}:8080/`)).toBe("b\n");
      // b's resolv.conf gains red's DNS server
      expect(await t.burrowOk(["exec", "b", "--", "cat", "/etc/resolv.conf"])).toContain("nameserver 10.89.50.1");
      const again = await t.burrow(["network", "connect", "red", "b"]);
      expect(again.code).toBe(125);
      expect(again.stderr).toContain("already connected");

      await t.burrowOk(["network", "disconnect", "red", "b"]);
      expect(Object.keys((await inspect(t, "b")).NetworkSettings.Networks)).toEqual(["blue"]);
      expect(Object.keys(await links(t, "b")).sort()).toEqual(["eth0", "lo"]);
      expect(await unreachable(t, "r", "http://b:8080/")).toBeNull();
      expect(await unreachable(t, "r", `http://${nets.red.IPAddress}:8080/`)).toBeNull();
      expect(await t.burrowOk(["exec", "b", "--", "cat", "/etc/resolv.conf"])).not.toContain("nameserver 10.89.50.1");
      // b is still fine on blue
      expect(await reach(t, "b", "http://b:8080/")).toBe("b\n");
      const notOn = await t.burrow(["network", "disconnect", "red", "b"]);
      expect(notOn.code).toBe(125);
      expect(notOn.stderr).toContain("not connected");
      await t.burrowOk(["rm", "-f", "r", "b"]);
    }, 60000);

    test("network reload after the CNI namespace's iptables were flushed restores connectivity with the same IP and MAC", async () => {
      const port = hostPort();
      await t.burrowOk(["network", "create", "--subnet", "10.89.90.0/24", "rel"]);
      const aId = await webSandbox(t, "a", ["--network", "rel", "--network-alias", "web", "-p", `${port}:8080`]);
      const bId = await webSandbox(t, "b", ["--network", "rel"]);
      const before = (await inspect(t, "a")).NetworkSettings.Networks.rel;
      expect(await until(() => fetchFromHost(t, port), 10000, `host -> :${port}`)).toBe("a\n");

      // What the rules carry: rootful, the published port (portmap's DNAT);
      // rootless, a's way out through slirp4netns (masquerade): slirp4netns
      // refuses 10.0.2.2 at once (host loopback is off), but without
      // masquerade its answer never finds its way back and curl times out.
      const works = async () => {
        if (mode === "rootful") return (await fetchFromHost(t, port)) === "a\n";
        const r = await curlFrom(t, "a", "http://10.0.2.2:9/", 2);
        if (r.code !== 7 && r.code !== 28) throw new Error(`unexpected curl result ${r.code}: ${r.stderr}`);
        return r.code === 7;
      };
      expect(await works()).toBe(true);
      const iptables = cniIptables(t);
      const rules = async () => (await inCniNetns(t, [...iptables, "-t", "nat", "-S"])).stdout;
      expect(await rules()).toContain(aId);
      if (mode === "rootless") {
        // burrow's own namespace: its CNI plugins use iptables-legacy where it works (asked here as
        // root in a netns of its own), and then nf_tables holds none of their rules.
        const legacyWorks =
          Bun.spawnSync(["unshare", "-n", "/usr/sbin/iptables-legacy", "-t", "nat", "-S"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
        expect(existsSync(`${t.dirs.runtimeDir}/rootless-netns/firewall`)).toBe(legacyWorks);
        if (legacyWorks) {
          expect(readFileSync(`${t.dirs.runtimeDir}/rootless-netns/firewall`, "utf8")).toBe("legacy\n");
          expect((await inCniNetns(t, ["/usr/sbin/iptables-nft", "-t", "nat", "-S"])).stdout).not.toContain(aId);
        }
      }

      const flush = await inCniNetns(t, [
        "sh",
        "-c",
        `for t in nat filter; do ${iptables.join(" ")} -t $t -F && ${iptables.join(" ")} -t $t -X || exit 1; done`,
      ]);
      expect(flush).toMatchObject({ code: 0, stderr: "" });
      expect(await rules()).not.toContain(aId);
      expect(await works()).toBe(false);

      expect(await t.burrowOk(["network", "reload", "a"])).toBe(`${aId}\n`);
      expect(await works()).toBe(true);
      expect(await rules()).toContain(aId);
      const after = (await inspect(t, "a")).NetworkSettings.Networks.rel;
      expect(after.IPAddress).toBe(before.IPAddress);
      expect(after.MacAddress).toBe(before.MacAddress);
      expect(after.Aliases).toEqual(before.Aliases);
      expect((await links(t, "a")).eth0).toEqual({ mac: before.MacAddress, ipv4: [`${before.IPAddress}/24`] });
      // the sandboxes still reach each other, by name and alias too, and the port still works (rootless: the forwarder)
      for (const host of [before.IPAddress, "a", "web"]) expect(await reach(t, "b", `http://${host}:8080/`)).toBe("a\n");
      expect(await until(() => fetchFromHost(t, port), 10000, `host -> :${port}`)).toBe("a\n");

      const all = (await t.burrowOk(["network", "reload", "--all"])).trim().split("\n").sort();
      expect(all).toEqual([aId, bId].sort());
      expect((await inspect(t, "b")).NetworkSettings.Networks.rel.IPAddress).toMatch(/^10\.89\.90\.\d+$/);
      expect(await rules()).toContain(bId);
      expect(await reach(t, "a", "http://b:8080/")).toBe("b\n");
      await t.burrowOk(["rm", "-f", "a", "b"]);
    }, 60000);

    for (const kind of ["missing", "failing"] as const) {
      test(`a ${kind} plugin rolls back every network fully and reports the plugin's message`, async () => {
        await t.burrowOk(["network", "create", "--subnet", "10.89.70.0/24", "good"]);
        const last = kind === "missing" ? { type: "burrow-no-such-plugin" } : { type: "tuning", sysctl: { "net.ipv4.conf.eth1.burrow_no_such_knob": "1" } };
        const conflist = {
          cniVersion: "0.4.0",
          name: "broken",
          plugins: [
            {
              type: "bridge",
              bridge: "burrow9",
              isGateway: true,
              ipMasq: true,
              hairpinMode: true,
              ipam: { type: "host-local", routes: [{ dst: "0.0.0.0/0" }], ranges: [[{ subnet: "10.89.71.0/24", gateway: "10.89.71.1" }]] },
            },
            { type: "portmap", capabilities: { portMappings: true } },
            { type: "firewall", backend: "" },
            last,
          ],
        };
        ownFile(t, `${t.dirs.cniConfigDir}/broken.conflist`, JSON.stringify(conflist, null, 3));
        // "good" is attached first (bridge, addresses, rules, dnsmasq) and must be undone too
        const r = await t.burrow(["run", "-d", "--name", "x", "--network", "good,broken", "--", "sleep", "300"]);
        expect(r.code).toBe(125);
        if (kind === "missing") {
          expect(r.stderr).toContain("CNI plugin burrow-no-such-plugin not found in");
          expect(r.stderr).toContain("/usr/lib/cni");
        } else {
          expect(r.stderr).toContain("CNI plugin tuning failed");
          expect(r.stderr).toContain("burrow_no_such_knob: no such file or directory");
        }
        expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
        // host-local gave both addresses back
        const dataDir = `${t.dirs.stateDir}/cni/networks`;
        for (const net of ["good", "broken"]) {
          const files = existsSync(`${dataDir}/${net}`) ? readdirSync(`${dataDir}/${net}`) : [];
          expect(files.filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))).toEqual([]);
        }
        expect(readdirSync(`${t.dirs.stateDir}/cni/results`, { withFileTypes: true }).length).toBe(0);
        if (mode === "rootless") {
          expect(existsSync(`${t.dirs.runtimeDir}/rootless-netns`)).toBe(false);
          expect(processesOf(t, /slirp4netns|dnsmasq/)).toEqual([]);
        } else {
          const veths = await t.run(["ip", "-o", "link", "show", "type", "veth"]);
          expect(veths.stdout).toBe("");
        }
        // the name is free, and the good network works alone
        await t.burrowOk(["run", "-d", "--name", "x", "--network", "good", "--", "sleep", "300"]);
        expect((await inspect(t, "x")).NetworkSettings.Networks.good.IPAddress).toMatch(/^10\.89\.70\.\d+$/);
        await t.burrowOk(["rm", "-f", "x"]);
      }, 60000);
    }

    test("malformed conflists are reported by file name and skipped; other networks keep working", async () => {
      await t.burrowOk(["network", "create", "--subnet", "10.89.80.0/24", "fine"]);
      const dir = t.dirs.cniConfigDir;
      ownFile(t, `${dir}/badjson.conflist`, "{ not json");
      ownFile(t, `${dir}/noplugins.conflist`, JSON.stringify({ cniVersion: "0.4.0", name: "noplugins" }));
      ownFile(t, `${dir}/ignored.conf`, "not a conflist, not read");
      const ls = await t.burrow(["network", "ls", "--quiet"]);
      expect(ls.code).toBe(0);
      expect(ls.stdout).toBe("burrow\nfine\n");
      expect(ls.stderr).toContain(`${dir}/badjson.conflist: invalid JSON`);
      expect(ls.stderr).toContain(`${dir}/noplugins.conflist: plugins:`);
      expect(ls.stderr).not.toContain("ignored.conf");
      // using a broken one says which file and why
      const bad = await t.burrow(["run", "--rm", "--network", "noplugins", "--", "true"]);
      expect(bad.code).toBe(125);
      expect(bad.stderr).toContain(`network noplugins cannot be used: ${dir}/noplugins.conflist`);
      expect((await t.burrow(["network", "inspect", "badjson"])).stderr).toContain(`${dir}/badjson.conflist: invalid JSON`);
      // the others work
      await webSandbox(t, "ok", ["--network", "fine"]);
      expect(await reach(t, "ok", "http://ok:8080/")).toBe("ok\n");
      await t.burrowOk(["rm", "-f", "ok"]);
    }, 60000);

    if (mode === "rootless")
      test("macvlan rootless: create is refused, and one written by hand is listed but refused on run and connect in one line, nothing made", async () => {
        const made = await t.burrow(["network", "create", "-d", "macvlan", "mv"]);
        expect(made.code).toBe(125);
        expect(made.stderr).toBe('Error: network driver "macvlan" needs root: a rootless sandbox has no host interface to attach it to; use bridge\n');
        expect(existsSync(`${t.dirs.cniConfigDir}/mv.conflist`)).toBe(false);
        // What podman v3 writes for `network create -d macvlan` (DHCP, no parent).
        const conflist = { cniVersion: "0.4.0", name: "mvhand", plugins: [{ type: "macvlan", master: "", ipam: { type: "dhcp" } }] };
        ownFile(t, `${t.dirs.cniConfigDir}/mvhand.conflist`, JSON.stringify(conflist));
        expect(await t.burrowOk(["network", "ls", "--format", "{{.Name}} {{.Driver}}"])).toBe("burrow bridge\nmvhand macvlan\n");
        const refusal =
          'Error: network mvhand cannot be used rootless: driver "macvlan" needs a host interface, which a rootless sandbox cannot attach to; use a bridge network\n';
        const run = await t.burrow(["run", "--rm", "--network", "mvhand", "--", "true"]);
        expect([run.code, run.stderr]).toEqual([125, refusal]);
        await t.burrowOk(["run", "-d", "--name", "plain", "--network", "none", "--", "sleep", "300"]);
        const connect = await t.burrow(["network", "connect", "mvhand", "plain"]);
        expect([connect.code, connect.stderr]).toEqual([125, refusal]);
        expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])).map((r: { Names: string[] }) => r.Names[0])).toEqual(["plain"]);
        await t.burrowOk(["rm", "-f", "plain"]);
      });

    test("network create/ls/rm follow podman's conventions", async () => {
      expect(await t.burrowOk(["network", "create", "zeta"])).toBe("zeta\n");
      expect(await t.burrowOk(["network", "create", "alpha"])).toBe("alpha\n");
      const dup = await t.burrow(["network", "create", "zeta"]);
      expect(dup.code).toBe(125);
      expect(dup.stderr).toContain("already used");
      const rmDefault = await t.burrow(["network", "rm", "burrow"]);
      expect(rmDefault.code).toBe(125);
      expect(rmDefault.stderr).toContain("default network burrow cannot be removed");

      const json = JSON.parse(await t.burrowOk(["network", "ls", "--format", "json"]));
      expect(json.map((n: { name: string }) => n.name)).toEqual(["alpha", "burrow", "zeta"]);
      for (const n of json) {
        expect(n.id).toMatch(/^[0-9a-f]{64}$/);
        expect(n.driver).toBe("bridge");
      }
      expect(json.find((n: { name: string }) => n.name === "zeta").dns_enabled).toBe(true);
      expect(json.find((n: { name: string }) => n.name === "burrow").dns_enabled).toBe(false);
      const short = (name: string) => json.find((n: { name: string }) => n.name === name).id.slice(0, 12);
      const table = (await t.burrowOk(["network", "ls"])).trimEnd().split("\n");
      expect(table[0]).toMatch(/^NETWORK ID\s+NAME\s+DRIVER$/);
      expect(table.slice(1).map((l) => l.split(/\s+/))).toEqual([
        [short("alpha"), "alpha", "bridge"],
        [short("burrow"), "burrow", "bridge"],
        [short("zeta"), "zeta", "bridge"],
      ]);
      expect(await t.burrowOk(["network", "ls", "--noheading"])).toBe(`${table.slice(1).join("\n")}\n`);
      expect(await t.burrowOk(["network", "ls", "--quiet"])).toBe("alpha\nburrow\nzeta\n");

      expect(await t.burrowOk(["network", "rm", "alpha", "zeta"])).toBe("alpha\nzeta\n");
      expect(await t.burrowOk(["network", "ls", "--quiet"])).toBe("burrow\n");
      const gone = await t.burrow(["network", "rm", "alpha"]);
      expect(gone.code).toBe(125);
    }, 30000);

    /** host-local allocations and CNI cache entries burrow keeps in its state dir. */
    function cniState(): string[] {
      const out: string[] = [];
      const walk = (dir: string) => {
        if (!existsSync(dir)) return;
        for (const f of readdirSync(dir, { withFileTypes: true })) {
          if (f.isDirectory()) walk(`${dir}/${f.name}`);
          else if (/^\d+\.\d+\.\d+\.\d+$/.test(f.name) || dir.endsWith("/results")) out.push(`${dir}/${f.name}`);
        }
      };
      walk(`${t.dirs.stateDir}/cni`);
      return out;
    }

    test("connect racing rm -f, and two connects at once, leave nothing behind and no lost interface", async () => {
      await t.burrowOk(["network", "create", "r1"]);
      await t.burrowOk(["network", "create", "r2"]);
      await t.burrowOk(["network", "create", "r3"]);
      for (let round = 0; round < 3; round++) {
        await t.burrowOk(["run", "-d", "--network", "r1", "--name", "racer", "--", "sleep", "300"]);
        const connect = t.burrow(["network", "connect", "r2", "racer"]);
        await Bun.sleep(20 * round);
        await t.burrowOk(["rm", "-f", "racer"]);
        await connect; // either attached before the removal or refused: both fine, leftovers are not
        expect(cniState()).toEqual([]);
      }
      await t.burrowOk(["run", "-d", "--network", "r1", "--name", "both", "--", "sleep", "300"]);
      const [x, y] = await Promise.all([t.burrow(["network", "connect", "r2", "both"]), t.burrow(["network", "connect", "r3", "both"])]);
      expect([x.code, y.code]).toEqual([0, 0]);
      const nets = JSON.parse(await t.burrowOk(["inspect", "both"]))[0].NetworkSettings.Networks;
      expect(Object.keys(nets).sort()).toEqual(["r1", "r2", "r3"]);
      const links = await t.burrowOk(["exec", "both", "--", "ip", "-o", "link", "show"]);
      expect([...links.matchAll(/^\d+: (eth\d+)@/gm)].map((m) => m[1]).sort()).toEqual(["eth0", "eth1", "eth2"]);
      await t.burrowOk(["rm", "-f", "both"]);
      expect(cniState()).toEqual([]);
      for (const n of ["r1", "r2", "r3"]) await t.burrowOk(["network", "rm", n]);
    }, 60000);

    test("a daemon killed during a background release: the next daemon finishes it", async () => {
      await t.burrowOk(["network", "create", "kn"]);
      await t.burrowOk(["run", "--rm", "--network", "kn", "--name", "k1", "--", "true"]);
      const daemons = daemonPids(t);
      for (const pid of daemons) process.kill(pid, "SIGKILL");
      // the next command starts a daemon whose reconcile finishes the release and the --rm
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      expect(cniState()).toEqual([]);
      await t.burrowOk(["network", "rm", "kn"]);
    }, 60000);

    test("six sandboxes joining one network at once all succeed (CNI runs are serialized)", async () => {
      await t.burrowOk(["network", "create", "crowd"]);
      const runs = await Promise.all(
        Array.from({ length: 6 }, (_, i) => t.burrow(["run", "--rm", "--network", "crowd", "--name", `c${i}`, "--", "ip", "-o", "-4", "addr", "show", "eth0"])),
      );
      for (const r of runs) {
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
      }
      const addrs = runs.map((r) => r.stdout.match(/inet (\S+)\//)![1]);
      expect(new Set(addrs).size).toBe(6);
      await t.burrowOk(["network", "rm", "crowd"]);
    }, 60000);

    test("run --rm back to back and six at once on one DNS network, alone and beside a sandbox that stays: every name resolves, the staying one's dnsmasq is never restarted, nothing is left", async () => {
      // A DEL now runs beside the next sandbox's ADD unless it may be the
      // network's last (which stops dnsmasq, racing the next ADD's start).
      await t.burrowOk(["network", "create", "--subnet", "10.199.9.0/24", "churn"]);
      // on another network: keeps the rootless namespace up, so what churn's sandboxes leave there can be looked at
      await t.burrowOk(["run", "-d", "--network", "bridge", "--name", "holder", "--", "sleep", "300"]);
      // Through dnsmasq (the FQDN: the short name is in the sandbox's /etc/hosts),
      // polled: dnsname's ADD only signals dnsmasq to reread its hosts file.
      const lookup = (name: string) => `i=0; until getent hosts ${name}.dns.burrow; do i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.05; done`;
      const resolves = async (name: string, also?: string) => {
        const r = await t.burrow([
          "run",
          "--rm",
          "--network",
          "churn",
          "--name",
          name,
          "--",
          "sh",
          "-c",
          [lookup(name), ...(also ? [lookup(also)] : [])].join("; "),
        ]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^10\\.199\\.9\\.\\d+\\s+${name}\\.dns\\.burrow\\b`, "m"));
        if (also) expect(r.stdout).toMatch(new RegExp(`\\s${also}\\.dns\\.burrow\\b`));
      };
      const rounds = async (prefix: string, also?: string) => {
        for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 6 }, (_, i) => resolves(`${prefix}${round}${i}`, also)));
        for (let i = 0; i < 4; i++) await resolves(`${prefix}s${i}`, also);
      };
      // Alone: a DEL may empty the hosts file; dnsmasq stops and the next ADD starts another.
      await rounds("a");
      // Beside a sandbox that stays: its dnsmasq serves every round.
      await t.burrowOk(["run", "-d", "--network", "churn", "--name", "stay", "--", "sleep", "300"]);
      const pidFile = `${mode === "rootless" ? `${t.dirs.stateDir}/cni/run` : t.dirs.runtimeDir}/containers/cni/dnsname/churn/pidfile`;
      const dnsmasqPid = readFileSync(pidFile, "utf8").trim();
      await rounds("b", "stay");
      expect(readFileSync(pidFile, "utf8").trim()).toBe(dnsmasqPid);
      await t.burrowOk(["rm", "-f", "stay"]);

      // ps waits for background releases: then nothing of churn's is left
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])).map((s: { Names: string[] }) => s.Names[0])).toEqual(["holder"]);
      expect(cniState().filter((f) => f.includes("churn") || f.includes("10.199.9."))).toEqual([]);
      expect(processesOf(t, /dnsmasq.*\/churn\//)).toEqual([]);
      expect(existsSync(pidFile)).toBe(false);
      const bridge = JSON.parse(await t.burrowOk(["network", "ls", "--format", "json"])).find((n: { name: string }) => n.name === "churn").network_interface;
      const veths = await inCniNetns(t, ["/usr/sbin/ip", "-o", "link", "show", "master", bridge]);
      expect(veths.code).toBe(0);
      expect(veths.stdout).toBe("");
      const rules = await inCniNetns(t, ["/usr/sbin/iptables-save"]);
      expect(rules.code).toBe(0);
      expect(rules.stdout).not.toContain("10.199.9.");
      await t.burrowOk(["rm", "-f", "holder"]);
      await t.burrowOk(["network", "rm", "churn"]);
    }, 60000);

    test("network rm forgets the network's address allocations and removes its bridge", async () => {
      await t.burrowOk(["network", "create", "--subnet", "10.199.7.0/24", "gone"]);
      const bridge = JSON.parse(await t.burrowOk(["network", "ls", "--format", "json"])).find((n: { name: string }) => n.name === "gone").network_interface;
      const first = (await t.burrowOk(["run", "--rm", "--network", "gone", "--", "sh", "-c", "ip -o -4 addr show eth0"])).match(/inet (\S+)\//)![1];
      // keep a sandbox on another network so a rootless CNI namespace stays up with the bridge in it
      await t.burrowOk(["run", "-d", "--network", "bridge", "--name", "keeper", "--", "sleep", "300"]);
      await t.burrowOk(["run", "--rm", "--network", "gone", "--", "true"]);
      await t.burrowOk(["network", "rm", "gone"]);
      expect(existsSync(`${t.dirs.stateDir}/cni/networks/gone`)).toBe(false);
      const links =
        mode === "rootful"
          ? await t.run(["ip", "-o", "link", "show"])
          : await t.burrow(["unshare", "--", "nsenter", `--net=${t.dirs.runtimeDir}/rootless-netns/net`, "ip", "-o", "link", "show"]);
      expect(links.code).toBe(0);
      expect(links.stdout).not.toContain(`${bridge}:`);
      await t.burrowOk(["network", "create", "--subnet", "10.199.7.0/24", "gone"]);
      const again = (await t.burrowOk(["run", "--rm", "--network", "gone", "--", "sh", "-c", "ip -o -4 addr show eth0"])).match(/inet (\S+)\//)![1];
      expect(again).toBe(first);
      await t.burrowOk(["rm", "-f", "keeper"]);
      await t.burrowOk(["network", "rm", "gone"]);
    }, 30000);
  });
}
