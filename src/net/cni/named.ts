// Named networks as the CNI backend serves them: the `networks` capability
// of the seam (src/net/backend.ts). Conflists in podman v3's layout
// (networks.ts), attachments through burrow's CNI runtime (backend.ts),
// dnsname's dnsmasq in the helper ledger (dnsmasq.ts). What the daemon did
// here itself before (src/daemon/networks.ts, create.ts, create-retry.ts)
// moved in whole; the sandbox's lock, row, /etc files, ports and events
// stay the daemon's. Daemon main thread.
import { readdirSync, readFileSync } from "node:fs";
import { pidsWhere } from "../../sys/processes.ts";
import { BurrowError, runAll } from "../../errors.ts";
import { log } from "../../log.ts";
import type { Sandbox } from "../../state/sandboxes.ts";
import type { NetworkBackend, NetworkDeps, NetworkNaming, NetworksCapability } from "../backend.ts";
import type { SharedRootlessNamespace } from "../netavark/backend.ts";
import type { RootlessNetns } from "./rootless-netns.ts";
import type { Paths } from "../../paths.ts";
import { connectInterface } from "./attachment.ts";
import { CniNetworking, cniBackend, cniRecordOf, networkNames, type CniAttachmentRecord, type CniRecord } from "./backend.ts";
import { dnsmasqNetwork, dnsnameNetworks, stopDnsmasq as forgetDnsmasq } from "./dnsmasq.ts";
import { networkSummary } from "./format.ts";
import type { Network } from "./networks.ts";
import { checkStaticAddressing } from "./static.ts";
import { quote } from "../../quote.ts";

/** Which networks a `--network NAME[,NAME]` mode or a CNI row names (pure). */
export const cniNaming: NetworkNaming<"cni"> = {
  names: networkNames,
  attached: (s) => cniRecordOf(s).attachments.map((a) => a.network),
};

/** The CNI backend with its named networks, as the registry makes it. */
export function cniBackendWith(
  deps: NetworkDeps,
  /** Whether a row's backend (runtime.network) is one of bridge networks. */
  onBridge: (kind: string) => boolean,
): NetworkBackend<"cni", CniRecord> & { networks: NetworksCapability<"cni", CniRecord>; shared: (SharedRootlessNamespace & { ns: RootlessNetns }) | null } {
  const cni = new CniNetworking(
    deps.paths,
    (exceptId) => deps.sandboxes().filter((s) => s.id !== exceptId && s.status !== "exited" && onBridge(s.runtime.network)).length,
    {
      helpers: deps.helpers,
      report: (type, attrs) => deps.report?.(type, attrs),
      // An exited bridge sandbox whose DEL has not run yet still needs the rootless namespace.
      unreleased: () => deps.sandboxes().some((s) => onBridge(s.runtime.network) && !!s.runtime.backend),
    },
  );
  // The rootless namespace is lent to netavark's backend: both backends' bridges live in it.
  const ns = cni.rootlessNetns;
  const shared = ns ? { ns, hold: <T>(fn: () => Promise<T>) => cni.hold(fn), release: (id: string) => cni.releaseShared(id) } : null;
  return { ...cniBackend(cni), networks: cniNetworks(cni), shared };
}

/** Does the user have CNI networks of their own (conflists; the synthesized default does not count)? */
export function hasCniNetworks(paths: Paths): boolean {
  try {
    return readdirSync(paths.cniConfigDir).some((e) => e.endsWith(".conflist"));
  } catch {
    return false;
  }
}

/** The --network-alias / --alias values of an attachment (without the name and short id every sandbox gets). */
function userAliases(s: Sandbox, a: CniAttachmentRecord): string[] {
  return a.aliases.filter((x) => x !== s.name && x !== s.id.slice(0, 12));
}

/**
 * Waits (up to `ms`) until no CNI plugin runs for container `id`: plugins
 * carry CNI_CONTAINERID in their environment (src/net/cni/plugins.ts), and
 * one started by a daemon that died keeps running to its end.
 */
async function pluginsDone(id: string, ms = 5000): Promise<void> {
  const needle = `CNI_CONTAINERID=${id}\0`;
  const running = () => pidsWhere((pid) => readFileSync(`/proc/${pid}/environ`, "latin1").includes(needle)).length > 0;
  const end = Date.now() + ms;
  while (running()) {
    if (Date.now() > end) {
      log.warn(`a CNI plugin for ${id.slice(0, 12)} still runs after ${ms} ms: rolling its create back anyway`);
      return;
    }
    await Bun.sleep(20);
  }
}

/**
 * Rootless, the CNI plugins run in burrow's own rootless namespace, whose
 * only link out is slirp4netns's or pasta's tap: a macvlan there has no host
 * interface to sit on (and its default IPAM, dhcp, no daemon to ask), so
 * the plugin fails half-way in its own words. Said first, in one line.
 */
function refuseRootlessMacvlan(cni: CniNetworking, net: Network): void {
  if (cni.rootlessNetns && net.driver === "macvlan")
    throw new BurrowError(
      `network ${net.name} cannot be used rootless: driver "macvlan" needs a host interface, which a rootless sandbox cannot attach to; use a bridge network`,
      { kind: "bad-input" },
    );
}

function cniNetworks(cni: CniNetworking): NetworksCapability<"cni", CniRecord> {
  return {
    ...cniNaming,
    async checkCreate(mode, req) {
      // Before anything is made: a plugin would catch these only half-way, in its own words.
      const bridgeNetworks = networkNames(mode);
      if (!bridgeNetworks.length) return;
      const nets = await cni.networks(bridgeNetworks);
      for (const net of nets) refuseRootlessMacvlan(cni, net);
      checkStaticAddressing(nets[0], req);
    },

    async create(a) {
      if (a.driver && a.driver !== "bridge" && a.driver !== "macvlan")
        throw new BurrowError(`unsupported network driver ${quote(a.driver)}: use bridge or macvlan`, { kind: "bad-input" });
      if (a.driver === "macvlan" && cni.rootlessNetns)
        throw new BurrowError(`network driver "macvlan" needs root: a rootless sandbox has no host interface to attach it to; use bridge`, {
          kind: "bad-input",
        });
      const { network, warnings } = await cni.store.create({
        name: a.name,
        driver: (a.driver as "bridge" | "macvlan" | undefined) ?? "bridge",
        subnets: a.subnets,
        gateway: a.gateway,
        ipRange: a.ipRange,
        ipv6: a.ipv6,
        internal: a.internal,
        disableDns: a.disableDns,
        labels: a.labels,
      });
      return { name: network.name, warnings };
    },
    async list() {
      const { networks, warnings } = await cni.store.list();
      // Data only: the CLI formats it (table, --quiet, templates).
      return { networks: networks.map(networkSummary), warnings: warnings.map((w) => `skipping ${w}`) };
    },
    inspect: (name) => cni.store.inspect(name),
    get: (ref) => cni.store.get(ref),
    async remove(net) {
      await cni.store.remove(net.name);
    },
    prune: (inUse) => cni.store.prune(inUse),
    // Every NamedNetwork given out here is a Network (get, prune).
    forget: (net) => cni.forget(net as Network),

    checkConnect: (net, opts) => {
      refuseRootlessMacvlan(cni, net as Network);
      checkStaticAddressing(net as Network, opts);
    },
    async connect(s, netns, net, aliases) {
      const record = cniRecordOf(s);
      const ifName = connectInterface(s.name, record.attachments, net.name);
      const att = await cni.attach(s, netns, net as Network, ifName, { aliases });
      record.attachments.push(att);
      return record;
    },
    async disconnect(s, netns, network) {
      const record = cniRecordOf(s);
      const att = record.attachments.find((x) => x.network === network);
      if (!att) throw new BurrowError(`sandbox ${s.name} is not connected to network ${network}`, { kind: "bad-input" });
      await cni.detach(s, netns, att);
      record.attachments = record.attachments.filter((x) => x !== att);
      return record;
    },
    /**
     * podman's reloadContainerNetwork: DEL (tolerating what a firewall reload
     * already removed) and ADD again, keeping IP and MAC when the sandbox has
     * one network with one address.
     */
    async reload(s, netns, { ports, save }) {
      const record = cniRecordOf(s);
      const keep = record.attachments.length === 1 && record.attachments[0]!.result.ips.length === 1;
      const next: CniAttachmentRecord[] = [];
      const errs = await runAll([...record.attachments].reverse().map((a) => () => cni.detach(s, netns, a, true)));
      for (const e of errs) log.debug(`reload ${s.name}: ${e.message}`);
      try {
        for (const a of record.attachments) {
          const net = await cni.store.get(a.network);
          const ip = keep ? a.result.ips[0]!.address.split("/")[0] : undefined;
          const mac = keep ? a.result.interfaces.find((x) => x.name === a.ifName)?.mac : undefined;
          next.push(
            await cni.attach(s, netns, net, a.ifName, {
              ip,
              mac,
              aliases: userAliases(s, a),
              ports,
            }),
          );
        }
      } finally {
        // What is attached now, even when a later network failed: the record
        // must match the plugins' state so a release tears down exactly that.
        record.attachments = next;
        save(record);
      }
    },
    dnsView: (s) => cni.dnsView(cniRecordOf(s)),

    settled: (id) => pluginsDone(id),
    releaseUnrecorded: (s, netns) => cni.detachUnrecorded(s, netns, s.spec.network),
    releaseByRecords: (id, netns) => cni.detachCached(id, netns),
    supervise: () => cni.supervise(),
    claims(row, used) {
      if (row.owner === "rootless-netns") return cni.rootlessNetns?.owns(row) ?? false;
      const network = dnsmasqNetwork(row.owner);
      if (network === null) return undefined;
      // dnsname stops it on the DEL that empties its hosts file; one that
      // DEL missed (a create rolled back without its cached result, a
      // crash) is ours to stop once no sandbox is on the network.
      return cni.working || used(network);
    },
    sweep(used) {
      // dnsname's files of networks no sandbox uses: their dnsmasq (recorded or
      // not: one an older burrow started) is stopped and the files go, as after
      // dnsname's own last DEL, so stale names never come back with the next one.
      if (cni.working) return;
      for (const network of dnsnameNetworks(cni.paths)) {
        if (used(network)) continue;
        const pid = forgetDnsmasq(cni.paths, network);
        if (pid !== null) log.warn(`stopped dnsmasq ${pid} of network ${network}: no sandbox is on that network any more`);
      }
    },
    async restore() {
      await cni.rootlessNetns?.restore();
    },
  };
}
