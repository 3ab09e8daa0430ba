// The CNI library against Debian's real plugins (bridge, host-local, portmap,
// firewall, tuning; dnsname + dnsmasq), as root. Nothing runs in the
// machine's own network namespace: the plugins run inside a test netns
// ("host") through the runtime's wrapper (`nsenter --net=...`), so the
// bridge, veths, sysctls and iptables rules exist only there, and the
// "containers" are two more test netns. host-local's data dir, the result
// cache and dnsname's run dir are temporary. Every netns is removed (with
// what runs in it) even when a test fails.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BurrowError } from "../../src/errors.ts";
import { buildAttachment } from "../../src/net/cni/attachment.ts";
import type { Conflist } from "../../src/net/cni/conflist.ts";
import { resultToBasicNetworkConfig } from "../../src/net/cni/inspect.ts";
import { NetworkStore } from "../../src/net/cni/networks.ts";
import { CniPluginError, DEFAULT_PLUGIN_DIRS, findPlugin } from "../../src/net/cni/plugins.ts";
import type { CniResult } from "../../src/net/cni/result.ts";
import { CniRuntime } from "../../src/net/cni/runtime.ts";
import { type TestNetns, createNetns, pidsInNetns } from "../helpers/netns.ts";
import { describeWhen, firstMissing, missingTools, needsRoot, testWhen } from "../helpers/requirements.ts";

/** "CNI plugins X, Y not found", or null. */
function missingPlugins(names: string[]): string | null {
  const missing = names.filter((n) => {
    try {
      findPlugin(n, DEFAULT_PLUGIN_DIRS);
      return false;
    } catch {
      return true;
    }
  });
  return missing.length ? `CNI plugins ${missing.join(", ")} not found in ${DEFAULT_PLUGIN_DIRS.join(", ")}` : null;
}

const missing = firstMissing(
  needsRoot,
  () => missingTools(["ip", "nsenter", "iptables"]),
  () => missingPlugins(["bridge", "host-local", "portmap", "firewall", "tuning"]),
);
const missingDns = firstMissing(
  missing,
  () => missingPlugins(["dnsname"]),
  () => missingTools(["dnsmasq"], "/usr/sbin:/usr/bin:/sbin:/bin"),
  () => missingTools(["unshare"]),
);
const pingCmd = Bun.which("ping") ? ["ping"] : Bun.which("busybox") ? ["busybox", "ping"] : null;

function sh(...argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} (exit ${r.exitCode}): ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}
const inNs = (ns: TestNetns, ...argv: string[]) => sh("nsenter", `--net=${ns.path}`, "--", ...argv);

interface Link {
  ifname: string;
  address?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}
const links = (ns: TestNetns): Link[] => JSON.parse(sh("ip", "-n", ns.name, "-d", "-j", "addr", "show"));
const link = (ns: TestNetns, name: string) => links(ns).find((l) => l.ifname === name);

describeWhen(missing)("CNI library with the real plugins (as root, in test netns)", () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-cni-lib-"));
  const dataDir = join(dir, "host-local");
  const cacheDir = join(dir, "cache");
  const spaces: TestNetns[] = [];
  let host: TestNetns;
  let a: TestNetns;
  let b: TestNetns;
  let store: NetworkStore;
  let runtime: CniRuntime;
  let wrapper: string[];
  const rand = Math.random().toString(36).slice(2, 8);

  /** The network as `network create` writes it, made safe for a test: host-local data and the firewall backend pinned. */
  function testable(conf: Conflist): Conflist {
    const copy = structuredClone(conf);
    for (const p of copy.plugins) {
      if (p.ipam) p.ipam.dataDir = dataDir;
      // "" would ask firewalld over D-Bus when it runs: that is the machine's firewall.
      if (p.type === "firewall") p.backend = "iptables";
    }
    return copy;
  }

  const attach = (ns: TestNetns, name: string, extra: Partial<Parameters<typeof buildAttachment>[0]> = {}) =>
    buildAttachment({ containerId: `cni-t-${rand}-${name}`, containerName: name, netns: ns.path, ifName: "eth0", ...extra });

  /** IP files host-local keeps for allocations (besides its lock and last_reserved_ip.N). */
  const allocations = (network: string) =>
    existsSync(join(dataDir, network)) ? readdirSync(join(dataDir, network)).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip")) : [];
  const cacheEntries = () => (existsSync(join(cacheDir, "results")) ? readdirSync(join(cacheDir, "results")) : []);
  /** Per-container iptables chains (bridge's ipMasq CNI-<hash>, portmap's CNI-DN-<hash>) left in the host netns. */
  const containerChains = () =>
    inNs(host, "iptables-save")
      .split("\n")
      .filter((l) => /^:CNI-(DN-)?[0-9a-f]{20,}/.test(l));

  function expectNothingLeft(network: string, bridge?: string) {
    for (const ns of [a, b]) expect(link(ns, "eth0")).toBeUndefined();
    expect(
      links(host)
        .filter((l) => l.linkinfo?.info_kind === "veth")
        .map((l) => l.ifname),
    ).toEqual([]);
    expect(allocations(network)).toEqual([]);
    expect(cacheEntries()).toEqual([]);
    expect(containerChains()).toEqual([]);
    // The machine's own namespace never saw any of it.
    if (bridge) expect(sh("ip", "-j", "link", "show").includes(`"ifname":"${bridge}"`)).toBe(false);
  }

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) spaces.push(await createNetns());
    [host, a, b] = spaces as [TestNetns, TestNetns, TestNetns];
    wrapper = ["nsenter", `--net=${host.path}`, "--"];
    store = new NetworkStore({ dir: join(dir, "net.d"), hostRoutes: () => [], interfaceNames: () => [] });
    runtime = new CniRuntime({ cacheDir, wrapper });
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    // Removing a netns also ends what runs in it (dnsmasq runs in the host netns).
    for (const ns of spaces) await ns.remove().catch((e) => errors.push(e));
    rmSync(dir, { recursive: true, force: true });
    if (errors.length) throw new Error(`cleanup: ${errors.map(String).join("; ")}`);
  });

  test("ADD two sandboxes, ping between them, CHECK, DEL (once after a 'restart'), nothing left", async () => {
    const { network } = await store.create({ name: `t-${rand}`, disableDns: true });
    const conf = testable(network.conflist);
    const bridge = network.bridge!;
    const subnet = network.subnets[0]!;

    const attA = attach(a, "alpha", { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }] });
    const attB = attach(b, "beta");
    let ra: CniResult | undefined;
    let rb: CniResult | undefined;
    try {
      ra = await runtime.add(conf, attA);
      rb = await runtime.add(conf, attB);

      for (const [ns, r] of [
        [a, ra],
        [b, rb],
      ] as const) {
        const basic = resultToBasicNetworkConfig(r);
        expect(basic.Gateway).toBe(subnet.gateway!);
        expect(basic.IPPrefixLen).toBe(24);
        expect(basic.IPAddress.startsWith(subnet.subnet.split(".").slice(0, 3).join("."))).toBe(true);
        const eth0 = link(ns, "eth0")!;
        expect(eth0.addr_info!.filter((x) => x.family === "inet").map((x) => `${x.local}/${x.prefixlen}`)).toEqual([`${basic.IPAddress}/24`]);
        expect(eth0.address).toBe(basic.MacAddress);
        expect(r.interfaces.map((i) => i.name)).toContain(bridge);
      }
      expect(link(host, bridge)?.linkinfo?.info_kind).toBe("bridge");
      expect(sh("ip", "-j", "link", "show").includes(`"ifname":"${bridge}"`)).toBe(false);
      expect(allocations(conf.name)).toHaveLength(2);
      expect(cacheEntries().sort()).toEqual([`${conf.name}-${attA.containerId}-eth0`, `${conf.name}-${attB.containerId}-eth0`]);
      // portmap's DNAT for the published port, in the host netns only.
      expect(inNs(host, "iptables-save", "-t", "nat")).toContain("--dport 18080");

      if (pingCmd) inNs(a, ...pingCmd, "-c", "1", "-W", "2", resultToBasicNetworkConfig(rb).IPAddress);

      // A new runtime, as after a daemon restart: DEL from the cache alone.
      await new CniRuntime({ cacheDir, wrapper }).del(conf.name, { containerId: attA.containerId, netns: a.path, ifName: "eth0" });
      expect(link(a, "eth0")).toBeUndefined();
      expect(allocations(conf.name)).toHaveLength(1);
      await runtime.del(conf, attB);
    } finally {
      // On a failure above, still leave nothing behind for the next test.
      for (const att of [attA, attB]) await runtime.del(conf, att).catch(() => undefined);
    }
    expectNothingLeft(conf.name, bridge);
    expect(inNs(host, "iptables-save", "-t", "nat")).not.toContain("--dport 18080");
  });

  test("a plugin failing mid-list: its message, and the list rolled back", async () => {
    const { network } = await store.create({ name: `f-${rand}`, disableDns: true });
    const conf = testable(network.conflist);
    // tuning refuses a sysctl that does not exist, after bridge made the veth and host-local handed out an IP.
    const tuning = conf.plugins.find((p) => p.type === "tuning")!;
    tuning.sysctl = { "net.ipv4.conf.eth0.burrow_no_such_sysctl": "1" };
    let error: unknown;
    try {
      await runtime.add(conf, attach(a, "alpha"));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CniPluginError);
    const e = error as CniPluginError;
    expect(e.plugin).toBe("tuning");
    expect(e.message).toMatch(/^CNI plugin tuning failed \(code \d+\): .*burrow_no_such_sysctl/);
    expect(e.message).not.toContain("teardown also failed");
    expectNothingLeft(conf.name, network.bridge);
  });

  test("the bridge plugin with an invalid config: its message, nothing left", async () => {
    const { network } = await store.create({ name: `i-${rand}`, disableDns: true });
    const conf = testable(network.conflist);
    const range = conf.plugins[0]!.ipam!.ranges![0]![0]!;
    range.rangeStart = "192.0.2.10"; // outside the subnet: host-local (called by bridge) refuses it
    let error: unknown;
    try {
      await runtime.add(conf, attach(a, "alpha"));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CniPluginError);
    expect((error as Error).message).toMatch(/^CNI plugin bridge failed \(code \d+\): .*192\.0\.2\.10/);
    // The rollback's DEL refuses the same config with the same words: not repeated.
    expect((error as Error).message).not.toContain("teardown also failed");
    expectNothingLeft(conf.name, network.bridge);
  });

  test("a missing plugin: named with the directories searched; nothing runs", async () => {
    const { network } = await store.create({ name: `m-${rand}`, disableDns: true });
    const conf = testable(network.conflist);
    conf.plugins.push({ type: "burrow-no-such-plugin" });
    let error: unknown;
    try {
      await runtime.add(conf, attach(a, "alpha"));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BurrowError);
    expect((error as Error).message).toBe(
      `CNI plugin burrow-no-such-plugin not found in ${DEFAULT_PLUGIN_DIRS.join(", ")}: install it (Debian: containernetworking-plugins) or add its directory`,
    );
    expect(link(host, network.bridge!)).toBeUndefined();
    expectNothingLeft(conf.name, network.bridge);
  });

  testWhen(missingDns)("dnsname: names and aliases resolve between sandboxes; dnsmasq ends with the last DEL", async () => {
    // dnsname keeps dnsmasq's files in /run/containers/cni/dnsname: give each
    // plugin run a private mount namespace whose /run is a temporary dir
    // (with the real /run/netns bound in), as the rootless daemon does with
    // per-user dirs.
    const runDir = join(dir, "run");
    mkdirSync(join(runDir, "netns"), { recursive: true });
    const dnsWrapper = [
      ...wrapper,
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      'mount --rbind /run/netns "$0/netns" && mount --rbind "$0" /run && exec "$@"',
      runDir,
    ];
    const dnsRuntime = new CniRuntime({ cacheDir, wrapper: dnsWrapper });
    const { network } = await store.create({ name: `d-${rand}` });
    expect(network.dnsEnabled).toBe(true);
    const conf = testable(network.conflist);
    const attA = attach(a, "alpha", { aliases: { [conf.name]: ["web-alias"] } });
    const attB = attach(b, "beta");
    try {
      const ra = await dnsRuntime.add(conf, attA);
      await dnsRuntime.add(conf, attB);
      const ipA = resultToBasicNetworkConfig(ra).IPAddress;
      const gateway = resultToBasicNetworkConfig(ra).Gateway;
      expect(pidsInNetns(host.name).length).toBeGreaterThan(0); // dnsmasq, in the host netns only
      expect(existsSync(join(runDir, "containers", "cni", "dnsname", conf.name))).toBe(true);
      if (Bun.which("busybox")) {
        // Full names: for a bare name busybox also asks for AAAA, which dnsmasq refuses (exit 1).
        for (const name of ["alpha.dns.burrow", "web-alias.dns.burrow"]) {
          expect(inNs(b, "busybox", "nslookup", name, gateway)).toContain(ipA);
        }
      }
      await dnsRuntime.del(conf, attA);
      await dnsRuntime.del(conf, attB);
    } finally {
      for (const att of [attA, attB]) await dnsRuntime.del(conf, att).catch(() => undefined);
    }
    expectNothingLeft(conf.name, network.bridge);
    // dnsname stops dnsmasq when the network's last container leaves.
    const deadline = Date.now() + 3000;
    while (pidsInNetns(host.name).length > 0 && Date.now() < deadline) await Bun.sleep(50);
    expect(pidsInNetns(host.name)).toEqual([]);
  });
});
