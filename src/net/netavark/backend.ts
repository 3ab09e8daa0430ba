// Named networks served by the real netavark, as podman 4-6 serve them:
// podman's network files in podman's places (networks-dir.ts), burrow's own
// address choice (addresses.ts, netavark allocates nothing), and one
// `netavark setup`/`teardown` per attachment (run.ts). Rootful, netavark
// runs in the daemon's namespaces (the host's; a test's netns in tests).
// Rootless, it runs inside the rootless namespace that CNI networks use too
// (src/net/cni/rootless-netns.ts: one per user, with its slirp4netns),
// through that namespace's runner, so bridges, firewall rules and
// aardvark-dns live there, never in the host's namespaces.
//
// What teardown needs is exactly the options document setup was given: it
// is written to a journal in the state dir before setup runs (a daemon that
// dies during setup leaves it for the rollback), and kept in the row's
// record once setup answered. Daemon main thread.
import { forgetNeighbour } from "../../sys/netlink.ts";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { PODMAN_NETAVARK_RUN_DIR, pinDir } from "../../paths.ts";
import * as v from "valibot";
import { BurrowError, messageOf } from "../../errors.ts";
import { log } from "../../log.ts";
import { Mutex } from "../../mutex.ts";
import { readPrivateRecord, writePrivateRecord } from "../../private-file.ts";
import { quote } from "../../quote.ts";
import { helperConf, withSbin } from "../../machine/helpers.ts";
import { rootlessGraphRoot } from "../../machine/containers-conf.ts";
import type { Paths } from "../../paths.ts";
import type { HelperLedger, HelperRow } from "../../state/helpers.ts";
import type { PortRecord, Sandbox } from "../../state/sandboxes.ts";
import { isRunning, pidsWhere, startTimeOf } from "../../sys/processes.ts";
import { cleanEnv } from "../../sys/env.ts";
import type { DnsView } from "../../dns/etc-content.ts";
import type { NamedNetwork, NetworkBackend, NetworkDeps, NetworkNaming, NetworkSummary, NetworksCapability, StaticAddressing } from "../backend.ts";
import type { NetworkModeOf } from "../mode.ts";
import { subnetToString } from "../cni/ip.ts";
import { allocate as ipamAllocate, release as ipamRelease, updateIpamDb } from "./ipam-db-write.ts";
import { readHostRoutes, readInterfaceNames } from "../cni/host.ts";
import type { RootlessNetns } from "../cni/rootless-netns.ts";
import { connectInterface, interfaceName } from "../cni/attachment.ts";
import { checkAlias, checkMac } from "../cni/static.ts";
import { leaseRangeOf, pickAddresses, subnetsOf } from "./addresses.ts";
import { type PodmanIpam, podmanIpam, readIpamDb } from "./ipam-db.ts";
import { podmanLockPaths, withPodmanLock } from "./podman-lock.ts";
import {
  DEFAULT_NETWORK_NAME,
  defaultNetworkConfig,
  planNetwork,
  readNetworks,
  removeNetworkFile,
  writeNetworkFile,
  type PodmanNetwork,
} from "./networks-dir.ts";
import {
  buildSetupOptions,
  findNetavarkHelper,
  netavarkSetup,
  netavarkTeardown,
  NetavarkRollbackFailed,
  type NetavarkInvocation,
  type NetavarkSpawner,
  bunNetavarkSpawner,
} from "./run.ts";
import { SetupOptions, StatusBlock, type NetworkFile } from "./schema.ts";
import { dnatPorts } from "../../port-dnat.ts";

/** One network a sandbox is attached to: what setup was given (teardown gets the same) and what it answered. */
export interface NetavarkAttachment {
  network: string;
  ifName: string;
  options: SetupOptions;
  status: StatusBlock;
  /** Names aardvark-dns answers for it there: its name, short id and --network-alias values (inspect's Aliases). */
  aliases: string[];
}

export interface NetavarkRecord {
  rootless: boolean;
  attachments: NetavarkAttachment[];
}

const Attachment = v.object({
  network: v.string(),
  ifName: v.string(),
  options: SetupOptions,
  status: StatusBlock,
  aliases: v.array(v.string()),
});

/** The record of a row: validated, since the row is a file (state.db) outside this process. */
export function netavarkRecordOf(s: Pick<Sandbox, "runtime">): NetavarkRecord {
  const r = s.runtime.backend as { rootless?: unknown; attachments?: unknown } | undefined;
  const atts = v.safeParse(v.array(Attachment), r?.attachments ?? []);
  return { rootless: r?.rootless === true, attachments: atts.success ? atts.output : [] };
}

/** `ip -j link show dev BRIDGE`: the one link, its index and MAC. */
const BridgeLink = v.pipe(v.array(v.looseObject({ ifindex: v.number(), address: v.pipe(v.string(), v.regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)) })), v.length(1));

/** The journal: options documents whose setup may have run, by sandbox (see the header). */
const Journal = v.object({ pending: v.array(SetupOptions) });

/** What netavark needs of the rootless namespace its bridges live in. */
export type NetavarkNamespace = Pick<RootlessNetns, "ensure" | "spawn" | "visiblePath" | "inode" | "alive" | "hostView"> & {
  /** After a logout: the processes run next get a new mount namespace where the old one lost the runtime dir (podman's namespace: podman-netns.ts). */
  dropStaleRunner?(): void;
};

/**
 * The rootless namespace netavark runs in: the one the CNI backend lends
 * (both backends' bridges in burrow's own), or podman's
 * (src/net/netavark/podman-netns.ts; `podman` set).
 */
export interface SharedRootlessNamespace {
  ns: NetavarkNamespace;
  /** podman's namespace: netavark's --config is podman's, aardvark-dns is podman's, its lock is taken. */
  podman?: { configDir: string };
  /** Runs `fn` with the namespace held: no release tears it down meanwhile. */
  hold<T>(fn: () => Promise<T>): Promise<T>;
  /** Tears the namespace down when no sandbox but `exceptId` needs it. */
  release(exceptId: string): Promise<Error[]>;
}

export interface NetavarkDeps extends NetworkDeps {
  shared: SharedRootlessNamespace | null;
  /** Tests replace netavark's process. */
  spawn?: NetavarkSpawner;
}

/** The default network's file: containers.conf default_network/default_subnet, else podman's. */
function defaultNetwork(): NetworkFile {
  const conf = helperConf();
  return defaultNetworkConfig({ name: conf.defaultNetwork, subnet: conf.defaultSubnet, now: new Date(0) });
}

function defaultName(): string {
  return helperConf().defaultNetwork ?? DEFAULT_NETWORK_NAME;
}

export function netavarkNames(mode: NetworkModeOf<"netavark">): string[] {
  return mode.networks.map((n) => (n === "bridge" ? defaultName() : n));
}

export const netavarkNaming: NetworkNaming<"netavark"> = {
  names: netavarkNames,
  attached: (s) => netavarkRecordOf(s).attachments.map((a) => a.network),
};

function addressesOf(status: StatusBlock): { ip: string; prefix: number; gateway?: string; mac?: string }[] {
  const out: { ip: string; prefix: number; gateway?: string; mac?: string }[] = [];
  for (const iface of Object.values(status.interfaces ?? {})) {
    for (const sn of iface.subnets ?? []) {
      const [ip, prefix] = sn.ipnet.split("/");
      out.push({ ip: ip!, prefix: Number(prefix), gateway: sn.gateway ?? undefined, mac: iface.mac_address });
    }
  }
  return out;
}

/** podman 4's inspect entry for one network (NetworkSettings.Networks[NAME]). */
function inspectEntry(a: NetavarkAttachment): Record<string, unknown> {
  const addrs = addressesOf(a.status);
  const v4 = addrs.filter((x) => !x.ip.includes(":"));
  const v6 = addrs.filter((x) => x.ip.includes(":"));
  const mac = Object.values(a.status.interfaces ?? {})[0]?.mac_address ?? "";
  return {
    EndpointID: "",
    Gateway: v4[0]?.gateway ?? "",
    IPAddress: v4[0]?.ip ?? "",
    IPPrefixLen: v4[0]?.prefix ?? 0,
    ...(v4.length > 1 ? { SecondaryIPAddresses: v4.slice(1).map((x) => x.ip) } : {}),
    IPv6Gateway: v6[0]?.gateway ?? "",
    GlobalIPv6Address: v6[0]?.ip ?? "",
    GlobalIPv6PrefixLen: v6[0]?.prefix ?? 0,
    MacAddress: mac,
    // podman 4-6 put the network's name here, as v3 did.
    NetworkID: a.network,
    DriverOpts: null,
    IPAMConfig: null,
    Links: null,
    Aliases: [...a.aliases],
  };
}

function summaryOf(n: PodmanNetwork): NetworkSummary {
  const c = n.config;
  return {
    name: c.name,
    id: c.id,
    driver: c.driver,
    ...(c.network_interface ? { network_interface: c.network_interface } : {}),
    ...(c.created ? { created: c.created } : {}),
    subnets: (c.subnets ?? []).map((s) => ({
      subnet: s.subnet,
      ...(s.gateway ? { gateway: s.gateway } : {}),
      ...(s.lease_range ? { lease_range: { start_ip: s.lease_range.start_ip, end_ip: s.lease_range.end_ip } } : {}),
    })),
    ipv6_enabled: c.ipv6_enabled ?? false,
    internal: c.internal ?? false,
    dns_enabled: c.dns_enabled ?? false,
    ...(c.labels ? { labels: c.labels } : {}),
    ipam_options: { driver: c.ipam_options?.driver ?? "host-local" },
  };
}

interface NamedNetavarkNetwork extends NamedNetwork {
  config: NetworkFile;
}

/**
 * The addresses aardvark-dns knows on `network` (its file in the config
 * dir: one line per container, `ID IPv4s IPv6s names`): podman's
 * containers' too when they share the directory (rootful), so a sandbox
 * never gets an address a container holds there.
 */
function aardvarkAddresses(configDir: string, network: string): string[] {
  const out: string[] = [];
  for (const file of [network, `${network}%int`]) {
    let text: string;
    try {
      text = readFileSync(`${configDir}/aardvark-dns/${file}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const [, v4 = "", v6 = ""] = line.trim().split(/\s+/);
      for (const ip of [...v4.split(","), ...v6.split(",")]) if (ip) out.push(ip);
    }
  }
  return out;
}

/** Reasons already said about podman's ipam.db: each once per daemon. */
const ipamDbWarned = new Set<string>();

/**
 * What podman's ipam.db in the config dir (rootful, shared with podman)
 * says about `network`: the addresses its containers hold (on a network
 * without DNS aardvark-dns's files do not have them) and where its
 * allocator goes on from. A file that cannot be read or is not what podman
 * writes is said once and left out.
 */
async function podmanIpamOf(configDir: string, network: string): Promise<PodmanIpam> {
  const path = `${configDir}/ipam.db`;
  try {
    const db = await readIpamDb(path);
    return db ? podmanIpam(db, network) : { addresses: [], lastIps: [] };
  } catch (e) {
    const reason = `podman's ${path} left out of the address choice: ${messageOf(e)}`;
    if (!ipamDbWarned.has(reason)) log.warn(reason);
    ipamDbWarned.add(reason);
    return { addresses: [], lastIps: [] };
  }
}

export class NetavarkNetworking {
  private readonly spawnLocal: NetavarkSpawner;
  /** Setups and teardowns, one at a time: an address is picked and taken under it, and netavark's firewall setup is not safe to race. */
  private readonly mutex = new Mutex();
  /** Addresses handed out by a setup whose row may not be saved yet, by network. */
  private readonly reserved = new Map<string, Map<string, string>>();
  private busy = 0;

  constructor(readonly deps: NetavarkDeps) {
    this.spawnLocal = deps.spawn ?? bunNetavarkSpawner;
  }

  private dir: string | null = null;

  /** Where the network files are (read once per daemon: see networksDirOf). */
  get networksDir(): string {
    return (this.dir ??= networksDirOf(this.deps.paths));
  }

  get rootless(): boolean {
    return this.deps.paths.rootless;
  }

  /** podman's network locks (src/net/netavark/podman-lock.ts). */
  get podmanLocks(): string[] {
    return podmanLockPaths({ rootless: this.rootless, networksDir: this.networksDir, netavarkDir: this.configDir });
  }

  /** Runs `fn` under podman's network locks: a network file created or removed (podman's own create and remove take them). */
  lockNetworkFiles<T>(fn: () => Promise<T>): Promise<T> {
    return withPodmanLock(this.podmanLocks, fn, { rootOwned: !this.rootless });
  }

  /**
   * Runs a setup's or teardown's `fn` under podman's network locks where
   * podman shares what it changes: rootful (one bridge, one config dir, one
   * ipam.db), and rootless in podman's own namespace (podman-netns.ts).
   * Rootless in burrow's namespace, podman's containers are elsewhere.
   */
  private underPodmanLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.rootless && !this.podmanShared ? fn() : withPodmanLock(this.podmanLocks, fn, { rootOwned: !this.rootless });
  }

  private get shared(): SharedRootlessNamespace | null {
    return this.rootless ? this.deps.shared : null;
  }

  /** podman's rootless namespace is shared (src/net/netavark/podman-netns.ts). */
  get podmanShared(): boolean {
    return !!this.shared?.podman;
  }

  /**
   * podman allocates from its ipam.db only: where podman's containers share
   * the bridge (rootful in podman's run dir, rootless in podman 5's
   * namespace), a sandbox's addresses are written there too
   * (src/net/netavark/ipam-db-write.ts).
   */
  get writesPodmanIpam(): boolean {
    return this.rootless ? this.podmanShared : this.configDir === PODMAN_NETAVARK_RUN_DIR;
  }

  /** Adds or removes a sandbox's entries in podman's ipam.db; a failure is said once in the log, never fatal (the address choice still avoids podman's). */
  private async podmanIpamChange(what: "add" | "remove", network: string, id: string, addresses: Array<{ ip: string; subnet: string }> = []): Promise<void> {
    if (!this.writesPodmanIpam) return;
    const path = `${this.configDir}/ipam.db`;
    try {
      await updateIpamDb(
        path,
        (root) => {
          if (what === "remove") return ipamRelease(root, network, id);
          ipamAllocate(root, network, id, addresses);
          return true;
        },
        { create: what === "add" },
      );
    } catch (e) {
      const reason = `cannot ${what === "add" ? "record a sandbox's addresses in" : "remove a sandbox's addresses from"} podman's ${path}: ${messageOf(e)}`;
      if (!ipamDbWarned.has(reason)) log.warn(reason);
      ipamDbWarned.add(reason);
    }
  }

  /** netavark's --config: podman's where its namespace is shared, else burrow's (rootful: podman's too). */
  get configDir(): string {
    return this.shared?.podman?.configDir ?? this.deps.paths.netavarkDir;
  }

  get working(): boolean {
    return this.busy > 0;
  }

  /** The networks, every file, and the default. */
  listing(): ReturnType<typeof readNetworks> {
    return readNetworks(this.networksDir, { rootless: this.rootless, defaultNetwork: defaultNetwork() });
  }

  /** A network by name or (a unique prefix of its) id; refuses one burrow cannot serve, naming field and value. */
  find(ref: string, o: { servable?: boolean } = {}): NamedNetavarkNetwork {
    const { networks, invalid } = this.listing();
    let n = networks.find((x) => x.name === ref);
    if (!n && /^[0-9a-f]{3,64}$/.test(ref)) {
      const hits = networks.filter((x) => x.config.id.startsWith(ref));
      if (hits.length > 1) throw new BurrowError(`network id prefix ${quote(ref)} is ambiguous: ${hits.map((h) => h.name).join(", ")}`, { kind: "bad-input" });
      n = hits[0];
    }
    if (!n) {
      const bad = invalid.find((f) => f.file.endsWith(`/${ref}.json`));
      if (bad) throw new BurrowError(`network ${ref} cannot be used: ${bad.file}: ${bad.reason}`, { kind: "network-invalid" });
      throw new BurrowError(`no network with name or id ${quote(ref)} found`, { kind: "not-found" });
    }
    if (o.servable && n.unservable) {
      const u = n.unservable;
      throw new BurrowError(`network ${n.name} cannot be used: ${u.field} ${quote(u.value)}: ${u.reason}`, { kind: "unsupported" });
    }
    return { name: n.name, isDefault: n.name === defaultName(), config: n.config };
  }

  private found: NetavarkInvocation | null = null;

  /** How netavark is run: its binary and aardvark-dns's looked up once per daemon, not per setup. */
  invocation(): NetavarkInvocation {
    if (this.found) return this.found;
    const binary = findNetavarkHelper("netavark");
    if (!binary)
      throw new BurrowError('netavark is not installed: install the netavark package (or set network_backend = "cni" in containers.conf)', { kind: "setup" });
    const aardvark = findNetavarkHelper("aardvark-dns");
    this.found = { binary, configDir: this.configDir, rootless: this.rootless, ...(aardvark ? { aardvarkBinary: aardvark } : {}) };
    return this.found;
  }

  /** Runs netavark where it must run: the rootless namespace, or here. */
  private readonly spawn: NetavarkSpawner = async (argv, stdin, env) => {
    const shared = this.shared;
    if (!shared) return this.spawnLocal(argv, stdin, env);
    const r = await shared.ns.spawn({ argv, stdin, env, timeoutMs: 60_000 });
    return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.timedOut ? `netavark timed out\n${r.stderr}` : r.stderr };
  };

  /** The netns path as netavark must be given it (rootless: through /proc/<daemon>/root, the runner's /run is private). */
  private netnsPath(netns: string): string {
    return this.shared ? this.shared.ns.visiblePath(netns) : netns;
  }

  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.busy++;
    try {
      return this.shared ? await this.shared.hold(fn) : await fn();
    } finally {
      this.busy--;
    }
  }

  // ------------------------------------------------------------ journal

  private journalPath(id: string): string {
    return `${this.deps.paths.stateDir}/netavark-journal/${id}.json`;
  }

  private readJournal(id: string): SetupOptions[] {
    try {
      return readPrivateRecord(this.journalPath(id), Journal, "a netavark journal")?.pending ?? [];
    } catch (e) {
      log.warn(`netavark journal of ${id.slice(0, 12)}: ${messageOf(e)}`);
      return [];
    }
  }

  private writeJournal(id: string, pending: SetupOptions[]): void {
    if (!pending.length) {
      rmSync(this.journalPath(id), { force: true });
      return;
    }
    const dir = `${this.deps.paths.stateDir}/netavark-journal`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writePrivateRecord(dir, `${id}.json`, { pending });
  }

  /** Drops a sandbox's journal (after a rollback that did all it could). */
  forgetJournal(id: string): void {
    this.writeJournal(id, []);
  }

  private sameAttachment(a: SetupOptions, b: SetupOptions): boolean {
    return JSON.stringify(Object.keys(a.networks)) === JSON.stringify(Object.keys(b.networks)) && a.container_id === b.container_id;
  }

  // ------------------------------------------------------------ attach / detach

  /** Addresses in use on `network`: burrow's rows, setups under way, aardvark-dns's entries and podman's ipam.db (podman's containers). */
  /** The addresses others hold on `network`, and where podman's allocator goes on from there. */
  private async usedAddresses(network: string, exceptId: string): Promise<{ used: string[]; podmanLast: string[] }> {
    const out: string[] = [];
    for (const s of this.deps.sandboxes()) {
      if (s.id === exceptId || s.runtime.network !== "netavark") continue;
      for (const a of netavarkRecordOf(s).attachments) if (a.network === network) for (const x of addressesOf(a.status)) out.push(x.ip);
    }
    for (const [ip, id] of this.reserved.get(network) ?? []) if (id !== exceptId) out.push(ip);
    out.push(...aardvarkAddresses(this.configDir, network));
    const podman = await podmanIpamOf(this.configDir, network);
    out.push(...podman.addresses);
    return { used: out, podmanLast: podman.lastIps };
  }

  private reserve(network: string, ips: string[], id: string): void {
    const m = this.reserved.get(network) ?? new Map<string, string>();
    for (const ip of ips) m.set(ip, id);
    this.reserved.set(network, m);
  }

  private unreserve(network: string, id: string): void {
    const m = this.reserved.get(network);
    if (!m) return;
    for (const [ip, owner] of m) if (owner === id) m.delete(ip);
  }

  /** Attaches one network as `ifName`: picks the addresses, journals the options, runs setup. */
  async attach(
    s: Sandbox,
    netns: string,
    net: NamedNetavarkNetwork,
    ifName: string,
    opts: { ip?: string; mac?: string; aliases: string[]; ports?: PortRecord[] },
  ): Promise<NetavarkAttachment> {
    if (this.shared) await this.shared.ns.ensure();
    // netavark does not make its --config itself: a DNS-enabled setup fails
    // without it ("failed to create aardvark-dns directory"). Rootful it is
    // podman's /run/containers/networks, which a machine without podman lacks;
    // podman's rootless one goes with a logout (podman makes it again, as here).
    if (!this.shared || this.podmanShared) mkdirSync(this.configDir, { recursive: true, mode: this.rootless ? 0o700 : 0o755 });
    const inv = this.invocation();
    const queued = performance.now();
    return this.mutex.run(() =>
      this.underPodmanLock(async () => {
        const waited = performance.now() - queued;
        if (waited > 1) log.debug(`netavark setup ${s.id.slice(0, 12)} waited ${waited.toFixed(1)} ms for the one before`);
        const { used, podmanLast } = await this.usedAddresses(net.name, s.id);
        const ips = pickAddresses(net.config, used, opts.ip ? [opts.ip] : [], podmanLast);
        const extra = [...new Set([s.id.slice(0, 12), ...opts.aliases])].filter((a) => a !== s.name);
        const options = buildSetupOptions({
          containerId: s.id,
          containerName: s.name,
          hostname: s.spec.hostname,
          attachments: [{ network: net.config, interfaceName: ifName, staticIps: ips, staticMac: opts.mac, aliases: extra }],
          // Not the ports on [::1]: DNAT cannot serve them; [::] as all addresses (src/port-dnat.ts).
          ports: dnatPorts(opts.ports).map((p) => ({ hostIp: p.hostIp, hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol })),
          dnsServers: s.spec.dns,
        });
        const journal = this.readJournal(s.id);
        this.writeJournal(s.id, [...journal, options]);
        this.reserve(net.name, ips, s.id);
        await this.podmanIpamChange("add", net.name, s.id, subnetsOf(net.config, ips));
        // podman's aardvark-dns (a shared namespace) is not burrow's helper.
        const track =
          net.config.dns_enabled && this.deps.helpers && !this.podmanShared && !this.aardvark()
            ? this.deps.helpers.intend("aardvark-dns", "netavark")
            : undefined;
        let reply: Awaited<ReturnType<typeof netavarkSetup>>;
        const t0 = performance.now();
        try {
          reply = await netavarkSetup(inv, this.netnsPath(netns), options, this.markedSpawn(track?.env));
          log.debug(`netavark setup ${s.id.slice(0, 12)} on ${net.name}: ${(performance.now() - t0).toFixed(1)} ms`);
        } catch (e) {
          // netavarkSetup ran netavark's teardown already; when that failed too,
          // the journal keeps the options for the caller's rollback to try again.
          this.unreserve(net.name, s.id);
          if (!(e instanceof NetavarkRollbackFailed)) {
            this.writeJournal(s.id, journal);
            await this.podmanIpamChange("remove", net.name, s.id);
          }
          track?.cancel();
          throw e;
        }
        if (net.config.dns_enabled && !this.podmanShared) this.recordAardvark(track);
        await this.freezeBridgeMac(net.config.network_interface);
        this.forgetOldNeighbours(reply[net.name]!, net.config.network_interface);
        return { network: net.name, ifName, options, status: reply[net.name]!, aliases: [s.name, ...extra] };
      }),
    );
  }

  /** Bridges whose MAC this daemon has fixed, as NAME@NAMESPACE; forgotten when their network's last sandbox leaves (netavark removes the bridge). */
  private readonly frozenBridges = new Set<string>();

  private bridgeKey(bridge: string): string {
    return `${bridge}@${this.shared ? (this.shared.ns.inode ?? "none") : "here"}`;
  }

  /**
   * netavark 1.4 sets no MAC on its bridges, so the kernel gives a bridge the
   * lowest MAC of its ports: a sandbox joining or leaving changes the
   * gateway's MAC under every other sandbox's neighbour cache, and their DNS
   * and outbound traffic stall for ~10 s (docs/netavark.md). Setting the
   * bridge's MAC to the one it has now changes nothing anyone sees and keeps
   * it from changing again, as later netavark versions do themselves. Best
   * effort: a failure is logged, never fatal.
   */
  private async freezeBridgeMac(bridge: string | undefined): Promise<void> {
    if (!bridge) return;
    const key = this.bridgeKey(bridge);
    if (this.frozenBridges.has(key)) return;
    const env = { PATH: withSbin(process.env.PATH) };
    try {
      const shown = await this.spawn(["ip", "-j", "link", "show", "dev", bridge], "", env);
      const link = v.safeParse(BridgeLink, JSON.parse(shown.stdout || "null"));
      if (shown.code !== 0 || !link.success) throw new Error(shown.stderr.trim() || "ip -j link show answered something else");
      const set = await this.spawn(["ip", "link", "set", "dev", bridge, "address", link.output[0]!.address], "", env);
      if (set.code !== 0) throw new Error(set.stderr.trim());
      this.frozenBridges.add(key);
    } catch (e) {
      log.debug(`cannot fix the MAC of bridge ${bridge}: ${messageOf(e)}`);
    }
  }

  /**
   * Rootful: the bridge lives in this daemon's netns, where DNAT'ed published
   * ports cross it. A sandbox that got an address back (stop + start, a
   * create after an rm) has a new MAC, and netavark 1.4 announces none: the
   * old neighbour entry would send its ports' traffic nowhere until it timed
   * out (~30 s). Forgotten here, the first packet asks again. Rootless ports
   * reach the sandbox from inside its own netns: nothing to forget there.
   */
  private forgetOldNeighbours(status: StatusBlock, bridge: string | undefined): void {
    if (this.rootless || !bridge) return;
    for (const a of addressesOf(status)) {
      if (a.ip.includes(":")) continue;
      try {
        forgetNeighbour(a.ip, bridge);
      } catch (e) {
        log.debug(`cannot forget the neighbour entry of ${a.ip} on ${bridge}: ${messageOf(e)}`);
      }
    }
  }

  /** The spawner with a helper ledger marker in netavark's environment: aardvark-dns, its child, inherits it. */
  private markedSpawn(marker: Record<string, string> | undefined): NetavarkSpawner {
    if (!marker) return this.spawn;
    return (argv, stdin, env) => this.spawn(argv, stdin, { ...env, ...marker });
  }

  /**
   * Runs teardown for one attachment's options (errors thrown: netavark's own
   * list, in one line). `unlinked`: the sandbox's interfaces this daemon
   * deleted already (`leave`), whose "No such device" from netavark is the
   * expected answer, not a failure.
   */
  async detach(id: string, netns: string, options: SetupOptions, unlinked: readonly string[] = []): Promise<void> {
    const inv = this.invocation();
    await this.mutex.run(async () => {
      // netavark removes a network's bridge and rules when its bridge has no
      // port left after this teardown: an interface another leave is still
      // deleting would count as one.
      await Promise.allSettled(this.leavesOn(Object.keys(options.networks)).map((e) => e.unlinked));
      const t0 = performance.now();
      try {
        await this.underPodmanLock(async () => {
          try {
            await netavarkTeardown(inv, this.netnsPath(netns), options, this.spawn);
          } finally {
            // Freed for podman whatever netavark answered: the sandbox is going.
            for (const name of Object.keys(options.networks)) await this.podmanIpamChange("remove", name, id);
          }
        });
      } catch (e) {
        if (!unlinked.length || !onlyGoneInterfaces(messageOf(e), unlinked)) throw e;
      }
      log.debug(`netavark teardown ${id.slice(0, 12)}: ${(performance.now() - t0).toFixed(1)} ms`);
      for (const name of Object.keys(options.networks)) {
        this.unreserve(name, id);
        // netavark removes a bridge with its network's last sandbox: one made again is fixed again.
        const bridge = options.network_info[name]?.network_interface;
        if (bridge && !this.othersOn(name, id)) this.frozenBridges.delete(this.bridgeKey(bridge));
      }
      this.writeJournal(
        id,
        this.readJournal(id).filter((o) => !this.sameAttachment(o, options)),
      );
    });
  }

  /**
   * Leaves that delete their interfaces first (`leave`), by network, then by
   * sandbox id: `unlinked` settles when the deletion has ended, `done` once
   * their netavark teardown has run too.
   */
  private readonly leaves = new Map<string, Map<string, { unlinked: Promise<string[]>; done: Promise<void> }>>();

  private leavesOn(networks: string[]) {
    return networks.flatMap((n) => [...(this.leaves.get(n)?.values() ?? [])]);
  }

  /**
   * The teardown of a sandbox that is going away (its command has ended).
   * Deleting a veth pair waits for the kernel's RCU grace periods, 15-20 ms
   * here and most of netavark's teardown (docs/netavark.md "A teardown off
   * the next setup's path"). While another sandbox stays on every network of
   * the attachment, that deletion is done first, by this daemon and outside
   * the turn-taking, so the next setup need not wait for it: netavark's
   * teardown, which must take its turn (aardvark-dns's file, the firewall),
   * then only removes the rules and names. A network's last sandbox is torn
   * down by netavark whole, as it must be to remove the bridge and the
   * network's rules.
   */
  async leave(id: string, netns: string, options: SetupOptions): Promise<void> {
    const networks = Object.keys(options.networks);
    const early = await this.mutex.run(async () => {
      // Decided in turn: of two sandboxes leaving a network at once, the second sees the first going.
      if (!networks.every((n) => this.othersOn(n, id, (other) => !this.leaves.get(n)?.has(other)))) return null;
      const settled = Promise.withResolvers<void>();
      const entry = { unlinked: this.unlinkInterfaces(netns, options), done: settled.promise };
      entry.unlinked.catch(() => {});
      for (const n of networks) {
        let byId = this.leaves.get(n);
        if (!byId) this.leaves.set(n, (byId = new Map()));
        byId.set(id, entry);
      }
      return { entry, settle: settled.resolve };
    });
    if (!early) {
      // Last on a network: after the leaves under way there, whose netavark
      // teardowns must come before the one that removes the network's rules.
      await Promise.allSettled(this.leavesOn(networks).map((e) => e.done));
      return this.detach(id, netns, options);
    }
    try {
      let unlinked: string[] = [];
      try {
        unlinked = await early.entry.unlinked;
      } catch (e) {
        // netavark deletes what is left, in its turn.
        log.debug(`netavark teardown ${id.slice(0, 12)}: the interfaces were not deleted ahead: ${messageOf(e)}`);
      }
      await this.detach(id, netns, options, unlinked);
    } finally {
      early.settle();
      for (const n of networks) {
        const byId = this.leaves.get(n);
        byId?.delete(id);
        if (byId && !byId.size) this.leaves.delete(n);
      }
    }
  }

  /** Deletes the attachment's interfaces in the sandbox's netns (the veth pair goes with its inner end); returns their names. */
  private async unlinkInterfaces(netns: string, options: SetupOptions): Promise<string[]> {
    const env = { PATH: withSbin(process.env.PATH) };
    const done: string[] = [];
    const t0 = performance.now();
    for (const { interface_name: ifName } of Object.values(options.networks)) {
      // In this daemon's own namespaces: the pin is in its mount namespace, and it may enter the sandbox's netns.
      const r = await this.spawnLocal(["nsenter", `--net=${netns}`, "ip", "link", "del", "dev", ifName], "", env);
      if (r.code !== 0) throw new Error(`ip link del ${ifName}: ${r.stderr.trim() || `exit ${r.code}`}`);
      done.push(ifName);
    }
    log.debug(`netavark teardown: ${done.join(", ")} deleted ahead in ${(performance.now() - t0).toFixed(1)} ms`);
    return done;
  }

  /** Is a sandbox other than `id` (and, given `counts`, one it accepts) attached to `network` (by the rows)? */
  private othersOn(network: string, id: string, counts: (other: string) => boolean = () => true): boolean {
    return this.deps
      .sandboxes()
      .some((s) => s.id !== id && counts(s.id) && s.runtime.network === "netavark" && netavarkRecordOf(s).attachments.some((a) => a.network === network));
  }

  /** Teardown of everything the journal says may be set up for `id` (a create that died, a row that is gone). */
  async detachJournaled(id: string, netns: string): Promise<Error[]> {
    const errors: Error[] = [];
    for (const options of this.readJournal(id).reverse()) {
      try {
        await this.detach(id, netns, options);
      } catch (e) {
        errors.push(e as Error);
      }
    }
    return errors;
  }

  // ------------------------------------------------------------ aardvark-dns

  /** The aardvark-dns that serves netavark's config dir now, from its pid file (checked: alive, and aardvark-dns). */
  aardvark(): { pid: number } | null {
    try {
      const pid = Number(readFileSync(`${this.configDir}/aardvark-dns/aardvark.pid`, "utf8").trim());
      if (!Number.isInteger(pid) || pid <= 0 || startTimeOf(pid) === null) return null;
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      return comm.startsWith("aardvark") ? { pid } : null;
    } catch {
      return null;
    }
  }

  private recordAardvark(track: ReturnType<HelperLedger["intend"]> | undefined): void {
    const ledger = this.deps.helpers;
    if (!ledger) return;
    try {
      const running = this.aardvark();
      const start = running ? startTimeOf(running.pid) : null;
      if (!running || start === null || ledger.records(running.pid, start)) {
        track?.cancel();
        return;
      }
      (track ?? ledger.intend("aardvark-dns", "netavark")).spawned(running.pid);
    } catch (e) {
      log.warn(`cannot record aardvark-dns: ${messageOf(e)}`);
    }
  }

  /**
   * After a logout removed the runtime dir: an aardvark-dns whose mount
   * namespace (the old runner's) reached netavark's dir through the removed
   * /run (a state dir under /run, as in the tests) reads nothing on the next
   * reload. It is replaced by one started as netavark starts it, in the new
   * runner's namespaces, from the same files: every name is in them.
   */
  async restoreAardvark(): Promise<void> {
    if (this.podmanShared) {
      this.shared?.ns.dropStaleRunner?.();
      return this.restorePodmanAardvark();
    }
    const shared = this.shared;
    const running = this.aardvark();
    const dir = `${this.configDir}/aardvark-dns`;
    if (!shared || !running || !shared.ns.alive() || existsSync(`/proc/${running.pid}/root${dir}`)) return;
    const binary = findNetavarkHelper("aardvark-dns");
    if (!binary) return;
    try {
      process.kill(running.pid, "SIGKILL");
    } catch {}
    for (let i = 0; i < 100 && startTimeOf(running.pid) !== null; i++) await Bun.sleep(20);
    const track = this.deps.helpers?.intend("aardvark-dns", "netavark");
    const r = await shared.ns.spawn({ argv: [binary, "--config", dir, "-p", "53", "run"], env: cleanEnv(track?.env), stdin: "", timeoutMs: 10_000 });
    if (r.exitCode !== 0) {
      track?.cancel();
      log.warn(`cannot start aardvark-dns again after the runtime directory was removed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
      return;
    }
    this.recordAardvark(track);
    log.warn(`aardvark-dns ${this.aardvark()?.pid ?? "?"} serves netavark's names now (the old one reached its files through the removed runtime directory)`);
  }

  /**
   * After a logout removed podman's run dir (podman's --config, in
   * $XDG_RUNTIME_DIR): aardvark-dns still runs in podman's namespace, but
   * its files and pid file are gone, and the mount namespace it reads them
   * through no longer reaches the runtime dir, so it names nobody and no
   * teardown would ever stop it. It is ended; its files are written again
   * from burrow's rows, as netavark writes them (a header of the network's
   * gateways and DNS servers; per container: id, IPv4s, IPv6s, names), and
   * a new one is started from them as netavark starts it, through a new
   * runner: the sandboxes are named again, and netavark's teardowns stop it
   * with the last of them. podman's own containers' lines went with
   * podman's files (podman does not restore them either; a podman user
   * keeps the run dir with `loginctl enable-linger`).
   */
  async restorePodmanAardvark(): Promise<void> {
    const dir = `${this.configDir}/aardvark-dns`;
    if (!this.podmanShared || existsSync(dir) || !this.shared?.ns.alive()) return;
    // In turn with setups and teardowns, which write these files too.
    await this.mutex.run(() => this.restorePodmanAardvarkNow(dir));
  }

  private async restorePodmanAardvarkNow(dir: string): Promise<void> {
    if (existsSync(dir)) return;
    const files = new Map<string, { header: string; lines: string[] }>();
    for (const s of this.deps.sandboxes()) {
      if (s.runtime.network !== "netavark") continue;
      for (const a of netavarkRecordOf(s).attachments) {
        const info = a.options.network_info[a.network];
        if (!info?.dns_enabled) continue;
        const file = files.get(a.network) ?? {
          header: [(info.subnets ?? []).flatMap((sn) => (sn.gateway ? [sn.gateway] : [])).join(","), (info.network_dns_servers ?? []).join(",")]
            .filter(Boolean)
            .join(" "),
          lines: [],
        };
        const ips = addressesOf(a.status).map((x) => x.ip);
        const dns = a.options.dns_servers?.length ? ` ${a.options.dns_servers.join(",")}` : "";
        file.lines.push(
          `${s.id} ${ips.filter((ip) => !ip.includes(":")).join(",")} ${ips.filter((ip) => ip.includes(":")).join(",")} ${a.aliases.join(",")}${dns}`,
        );
        files.set(a.network, file);
      }
    }
    // Nothing of burrow's to name (a network without DNS, podman's default among them): no /proc scan on
    // housekeeping's every turn, and no aardvark-dns of burrow's left to stop (netavark stopped it with the last).
    if (!files.size) return;
    // The one left running reads its files through a mount namespace the logout cut off: it is replaced.
    const running = pidsWhere((pid) => {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return !!argv[0]?.endsWith("aardvark-dns") && argv.includes(dir) && isRunning(pid);
    });
    for (const pid of running) process.kill(pid, "SIGTERM");
    for (let i = 0; i < 100 && running.some(isRunning); i++) await Bun.sleep(10);
    const binary = findNetavarkHelper("aardvark-dns");
    if (!binary || !this.shared) return;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const [network, f] of files) writeFileSync(`${dir}/${network}`, `${[f.header, ...f.lines].join("\n")}\n`, { mode: 0o600 });
    // Started as netavark starts it, in the namespace's runner (a new one after a logout), from the files just written.
    const r = await this.shared.ns.spawn({ argv: [binary, "--config", dir, "-p", "53", "run"], env: cleanEnv(), stdin: "", timeoutMs: 10_000 });
    if (r.exitCode !== 0) throw new Error(`cannot start aardvark-dns again after a logout removed its files: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
    log.warn(
      `aardvark-dns ${this.aardvark()?.pid ?? "?"} of podman's namespace names burrow's sandboxes again (a logout removed its files): ${[...files.keys()].join(", ")}`,
    );
  }

  // ------------------------------------------------------------ views

  dnsView(record: NetavarkRecord): DnsView {
    const first = record.attachments[0] ? addressesOf(record.attachments[0].status).find((x) => !x.ip.includes(":")) : undefined;
    // A primary network with an IPv6 subnet: the forwarder reaches the sandbox there over IPv6 for IPv6 clients.
    const address6 = record.attachments[0] ? addressesOf(record.attachments[0].status).find((x) => x.ip.includes(":"))?.ip : undefined;
    const nameservers: string[] = [];
    const search: string[] = [];
    for (const a of record.attachments) {
      for (const ns of a.status.dns_server_ips ?? []) if (!nameservers.includes(ns)) nameservers.push(ns);
      for (const d of a.status.dns_search_domains ?? []) if (!search.includes(d)) search.push(d);
    }
    return {
      address: first?.ip,
      hostsAddress: first?.ip,
      gateway: first?.gateway,
      prefixLength: first?.prefix,
      ...(address6 ? { ipv6: true, address6 } : {}),
      nameservers,
      searchDomains: search.length ? search : undefined,
      // Rootless: the shared namespace decides what reaches the host (pasta's mapped address).
      ...this.shared?.ns.hostView(),
    };
  }

  inspectEntries(record: NetavarkRecord | undefined): Record<string, object> {
    const out: Record<string, object> = {};
    for (const a of record?.attachments ?? []) out[a.network] = inspectEntry(a);
    return out;
  }
}

/** Is a process netavark, working on config dir `dir`? (a dead daemon's setup runs to its end) */
function netavarkRunning(dir: string): boolean {
  return (
    pidsWhere((pid) => {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return !!argv[0]?.endsWith("netavark") && argv.includes(dir);
    }).length > 0
  );
}

/** The NetworkBackend and networks capability for `--network NAME` when netavark serves named networks. */
export function netavarkBackendWith(
  deps: NetavarkDeps,
): NetworkBackend<"netavark", NetavarkRecord> & { networks: NetworksCapability<"netavark", NetavarkRecord> } {
  const nv = new NetavarkNetworking(deps);
  const releaseShared = (id: string) => (nv.rootless && deps.shared ? deps.shared.release(id) : Promise.resolve([]));

  const networksOfMode = (mode: NetworkModeOf<"netavark">): NamedNetavarkNetwork[] => {
    const seen = new Set<string>();
    return netavarkNames(mode).map((name) => {
      const n = nv.find(name, { servable: true });
      if (seen.has(n.name)) throw new BurrowError(`network ${n.name} is given twice`, { kind: "bad-input" });
      seen.add(n.name);
      return n;
    });
  };

  const networks: NetworksCapability<"netavark", NetavarkRecord> = {
    ...netavarkNaming,
    async checkCreate(mode, req: StaticAddressing) {
      const nets = networksOfMode(mode);
      nv.invocation();
      for (const a of req.aliases ?? []) checkAlias(a);
      if (req.ip && nets[0]) pickAddresses(nets[0].config, [], [req.ip]);
      if (req.mac) checkMac(req.mac);
    },

    async create(req) {
      if (req.driver && req.driver !== "bridge")
        throw new BurrowError(`unsupported network driver ${quote(req.driver)}: burrow creates bridge networks`, { kind: "bad-input" });
      const lease = req.ipRange !== undefined ? leaseRangeOf(req.ipRange, req.subnets) : null;
      // As podman's own create: the name, subnet and bridge chosen against every file, and written, under podman's lock.
      return nv.lockNetworkFiles(async () => {
        const existing = nv.listing().networks.map((n) => n.config);
        const name = req.name ?? firstFreeName(existing.map((n) => n.name));
        const routes = readHostRoutes().map(subnetToString);
        if (req.gateway && req.subnets.length !== 1) throw new BurrowError("--gateway needs exactly one --subnet", { kind: "bad-input" });
        const config = planNetwork(
          {
            name,
            subnets: req.subnets.map((subnet, i) => ({
              subnet,
              ...(req.gateway ? { gateway: req.gateway } : {}),
              ...(lease?.index === i ? { leaseRange: { start: lease.start, end: lease.end } } : {}),
            })),
            ipv6: req.ipv6,
            internal: req.internal,
            dnsEnabled: !req.disableDns,
            labels: req.labels,
          },
          existing,
          { subnets: routes, interfaces: readInterfaceNames() },
        );
        writeNetworkFile(nv.networksDir, config);
        return { name: config.name, warnings: [] };
      });
    },
    async list() {
      const { networks: all, invalid } = nv.listing();
      const warnings = [
        ...invalid.map((f) => `skipping ${f.file}: ${f.reason}`),
        ...all
          .filter((n) => n.unservable)
          .map((n) => `network ${n.name} cannot be used: ${n.unservable!.field} ${quote(n.unservable!.value)}: ${n.unservable!.reason}`),
      ];
      return { networks: all.map(summaryOf), warnings };
    },
    async inspect(ref) {
      const n = nv.find(ref);
      return { ...n.config, name: n.name };
    },
    get: async (ref) => nv.find(ref),
    async remove(net) {
      await nv.lockNetworkFiles(async () => removeNetworkFile(nv.networksDir, net.name, defaultName()));
    },
    prune: (inUse) =>
      nv.lockNetworkFiles(async () => {
        const removed: NamedNetwork[] = [];
        const errors: Error[] = [];
        for (const n of nv.listing().networks) {
          if (n.name === defaultName() || inUse.has(n.name) || !n.file) continue;
          try {
            removeNetworkFile(nv.networksDir, n.name, defaultName());
            removed.push({ name: n.name, isDefault: false });
          } catch (e) {
            errors.push(e as Error);
          }
        }
        return { removed, errors };
      }),
    // netavark's teardown of a network's last sandbox removes its bridge and rules.
    forget: async () => [],

    checkConnect(net, opts) {
      const n = nv.find(net.name, { servable: true });
      for (const a of opts.aliases ?? []) checkAlias(a);
      if (opts.ip) pickAddresses(n.config, [], [opts.ip]);
    },
    async connect(s, netns, net, aliases) {
      const record = netavarkRecordOf(s);
      const ifName = connectInterface(s.name, record.attachments, net.name);
      const n = nv.find(net.name, { servable: true });
      record.attachments.push(await nv.hold(() => nv.attach(s, netns, n, ifName, { aliases })));
      return record;
    },
    async disconnect(s, netns, network) {
      const record = netavarkRecordOf(s);
      const att = record.attachments.find((x) => x.network === network);
      if (!att) throw new BurrowError(`sandbox ${s.name} is not connected to network ${network}`, { kind: "bad-input" });
      await nv.hold(() => nv.detach(s.id, netns, att.options));
      record.attachments = record.attachments.filter((x) => x !== att);
      return record;
    },
    async reload(s, netns, { ports, save }) {
      // podman's reload: teardown (tolerating what a firewall reload removed), then setup with the same addresses and MAC.
      const record = netavarkRecordOf(s);
      const next: NetavarkAttachment[] = [];
      await nv.hold(async () => {
        for (const a of [...record.attachments].reverse()) {
          await nv.detach(s.id, netns, a.options).catch((e) => log.debug(`reload ${s.name}: ignoring teardown error on ${a.network}: ${messageOf(e)}`));
        }
        try {
          for (const [i, a] of record.attachments.entries()) {
            const n = nv.find(a.network, { servable: true });
            const per = a.options.networks[a.network];
            next.push(
              await nv.attach(s, netns, n, a.ifName, {
                ip: per?.static_ips?.[0],
                mac: Object.values(a.status.interfaces ?? {})[0]?.mac_address,
                aliases: a.aliases.filter((x) => x !== s.name && x !== s.id.slice(0, 12)),
                ports: i === 0 && !nv.rootless ? ports : undefined,
              }),
            );
          }
        } finally {
          record.attachments = next;
          save(record);
        }
      });
    },
    dnsView: async (s) => nv.dnsView(netavarkRecordOf(s)),

    async settled() {
      const end = Date.now() + 5000;
      while (netavarkRunning(nv.configDir)) {
        if (Date.now() > end) {
          log.warn("a netavark process still runs after 5 s: rolling its create back anyway");
          return;
        }
        await Bun.sleep(20);
      }
    },
    async releaseUnrecorded(s, netns) {
      if (nv.rootless && deps.shared && !deps.shared.ns.alive()) return;
      const errors = await nv.hold(() => nv.detachJournaled(s.id, netns));
      for (const e of errors) log.debug(`rollback: netavark teardown for ${s.id.slice(0, 12)}: ${e.message}`);
    },
    async releaseByRecords(id, netns) {
      if (nv.rootless && deps.shared && !deps.shared.ns.alive()) return [];
      return nv.hold(() => nv.detachJournaled(id, netns));
    },
    // burrow's own shared namespace is CNI's to supervise (src/net/cni/rootless-supervisor.ts); podman's is
    // let go here when no sandbox is on it (a daemon that died between a last teardown and its release).
    supervise: async () => {
      if (!nv.podmanShared || !deps.shared) return;
      // A logout's rm -rf may remove podman's run dir after the daemon's own restore ran.
      await nv.restorePodmanAardvark();
      for (const e of await deps.shared.release("")) log.warn(`podman's rootless network namespace: ${messageOf(e)}`);
    },
    claims(row: HelperRow) {
      if (row.kind !== "aardvark-dns") return undefined;
      // netavark stops it when its last network's last sandbox goes; until then it is needed.
      return nv.working || deps.sandboxes().some((s) => s.runtime.network === "netavark" && netavarkRecordOf(s).attachments.length > 0);
    },
    sweep() {},
    restore: () => nv.restoreAardvark(),
  };

  return {
    kind: "netavark",
    etc: "network",
    bridge: true,
    entersNetns: true,
    plan: async () => ({ newNet: true }),
    // Rootful, netavark publishes the ports itself (DNAT), and the portmap
    // driver holds the host ports; rootless, the builtin forwarder reaches
    // the sandbox's bridge address, as for CNI networks.
    ports: (_mode, { rootless }) => ({ driver: rootless ? "builtin" : "portmap" }),
    async setup(mode, ctx) {
      const s = ctx.sandbox;
      const nets = networksOfMode(mode);
      const record: NetavarkRecord = { rootless: nv.rootless, attachments: [] };
      try {
        await nv.hold(async () => {
          for (const [i, n] of nets.entries()) {
            record.attachments.push(
              await nv.attach(s, ctx.netns, n, interfaceName(i), {
                ip: i === 0 ? s.spec.ip : undefined,
                mac: i === 0 ? s.spec.mac : undefined,
                aliases: s.spec.aliases,
                ports: i === 0 && !nv.rootless ? s.runtime.ports : undefined,
              }),
            );
          }
        });
      } catch (e) {
        // The journal holds every attachment set up so far, and one whose own
        // rollback failed: each is torn down, newest first.
        const errors = await nv.hold(() => nv.detachJournaled(s.id, ctx.netns));
        for (const err of errors) log.warn(`rollback of ${s.name}: netavark teardown: ${messageOf(err)}`);
        // Tried twice now; nothing later would try again for a sandbox that was never made.
        nv.forgetJournal(s.id);
        for (const err of await releaseShared(s.id)) log.warn(`rollback of ${s.name}: the shared rootless namespace: ${messageOf(err)}`);
        throw e;
      }
      return { record, ...nv.dnsView(record) };
    },
    async teardown(r, ctx) {
      const errors: Error[] = [];
      const netns = ctx.netns || `${pinDir(ctx.paths, ctx.sandbox.id)}/net`;
      const record = netavarkRecordOf({ runtime: { ...ctx.sandbox.runtime, backend: r } });
      await nv.hold(async () => {
        for (const a of [...record.attachments].reverse()) {
          try {
            await nv.leave(ctx.sandbox.id, netns, a.options);
          } catch (e) {
            errors.push(e as Error);
          }
        }
      });
      // The release drops the row's record after this, whatever failed: the
      // journal would then be read by nothing (it serves creates that died
      // before their row), so a failed teardown must not leave it behind.
      if (errors.length) nv.forgetJournal(ctx.sandbox.id);
      errors.push(...(await releaseShared(ctx.sandbox.id)));
      return errors;
    },
    inspectNetworks: (r) => nv.inspectEntries(r),
    networks,
  };
}

/**
 * Does netavark's teardown error say only that interfaces in `gone` were not
 * there to delete? netavark 1.4: "failed to delete container veth eth0:
 * Netlink error: No such device (os error 19)", after it removed the rules
 * and the names (measured: docs/netavark.md). Pure.
 */
export function onlyGoneInterfaces(message: string, gone: readonly string[]): boolean {
  const named = [...message.matchAll(/failed to delete container veth ([^\s:]+): [^"]*?No such device/g)].map((m) => m[1]!);
  if (!named.length || !named.every((n) => gone.includes(n))) return false;
  // Nothing else went wrong: every "failed to" in it is one of those.
  return (message.match(/failed to/g) ?? []).length === named.length;
}

/** A name for a network created without one: podman's "podmanN" scheme, first free. */
function firstFreeName(taken: string[]): string {
  for (let n = 1; ; n++) if (!taken.includes(`podman${n}`)) return `podman${n}`;
}

/**
 * podman's network directory: BURROW_NETWORKS_DIR (the CLI put it in
 * paths.networksDir), else containers.conf network_config_dir, else
 * (rootless) the graphroot storage.conf names, else podman's default place.
 */
export function networksDirOf(paths: Paths, env: Record<string, string | undefined> = process.env): string {
  if (env.BURROW_NETWORKS_DIR) return paths.networksDir;
  const conf = helperConf();
  if (conf.networkConfigDir) return conf.networkConfigDir;
  const graph = paths.rootless ? rootlessGraphRoot(env, paths.uid) : undefined;
  return graph ? `${graph}/networks` : paths.networksDir;
}

/** Is netavark installed (for the backend choice)? */
export function netavarkInstalled(): boolean {
  return findNetavarkHelper("netavark") !== null;
}

/** Does the user have netavark network files (besides the implicit default)? */
export function hasNetavarkNetworks(dir: string): boolean {
  try {
    return readdirSync(dir).some((e) => e.endsWith(".json") && !e.startsWith("."));
  } catch {
    return false;
  }
}
