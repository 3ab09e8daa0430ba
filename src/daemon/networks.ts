// Network operations: bridge network configs (CNI conflists) and attaching
// running sandboxes to them. Daemon main thread.
import type * as v from "valibot";
import { BurrowError, messageOf, runAll } from "../errors.ts";
import { log } from "../log.ts";
import { sandboxDir } from "../paths.ts";
import type { Ops } from "../protocol.ts";
import { interfaceName } from "../net/cni/attachment.ts";
import { cniRecordOf as cniRecord, networkNames, type CniAttachmentRecord } from "../net/cni/backend.ts";
import { networkSummary } from "../net/cni/format.ts";
import { parseNetworkMode } from "../net/mode.ts";
import { etcContent } from "../dns/etc-content.ts";
import { etcFiles } from "../sandbox/files.ts";
import { rewriteEtcFile } from "./ownership.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import type { SandboxService } from "./service.ts";
import { checkStaticAddressing } from "../net/cni/static.ts";
import { quote } from "../quote.ts";

type Args<K extends keyof typeof Ops> = v.InferOutput<(typeof Ops)[K]>;

/** The --network-alias / --alias values of an attachment (without the name and short id every sandbox gets). */
function userAliases(s: Sandbox, a: CniAttachmentRecord): string[] {
  return a.aliases.filter((x) => x !== s.name && x !== s.id.slice(0, 12));
}

/** Networks a sandbox names in its spec or is attached to now. */
function networksOf(s: Sandbox): string[] {
  const names = new Set<string>();
  try {
    for (const n of networkNames(parseNetworkMode(s.spec.network))) names.add(n);
  } catch {}
  for (const a of cniRecord(s).attachments) names.add(a.network);
  return [...names];
}

export function networkHandlers(svc: SandboxService) {
  const cni = svc.cni;

  /**
   * After the attachments changed (already saved in the row): rewrites
   * hosts/resolv.conf and points published ports at the new primary address.
   * A port that cannot be re-published is recorded, not thrown: the network
   * change itself happened.
   */
  async function afterChange(s: Sandbox): Promise<void> {
    const record = cniRecord(s);
    const view = await cni.dnsView(record);
    const oldAddress = s.runtime.address;
    s.runtime.address = view.address;
    svc.store.update(s);
    const files = etcFiles(sandboxDir(svc.paths, s.id));
    const policy = svc.backends.forKind(s.runtime.network).etc;
    const content = etcContent({ policy, hostname: s.spec.hostname, name: s.name, dns: s.spec.dns, net: view });
    // After a logout the sandbox reads unlinked originals (src/daemon/ownership.ts).
    rewriteEtcFile(files.hosts, "/etc/hosts", s, content.hosts);
    rewriteEtcFile(files.resolv, "/etc/resolv.conf", s, content.resolv);
    if (s.runtime.ports?.length && oldAddress !== view.address && svc.paths.rootless) {
      // The forwarder connects to the primary address: re-publish the same host ports.
      await svc.ports.teardown(s);
      try {
        if (view.address) s.runtime.ports = await svc.ports.setup(s, s.runtime.ports);
      } catch (e) {
        s.runtime.networkError = `published ports lost after the network change: ${messageOf(e)}`;
      }
      svc.store.update(s);
    }
  }

  /** A running bridge sandbox, read afresh (call under its lock). */
  function running(ref: string): Sandbox {
    const s = svc.store.find(ref);
    if (svc.isExiting(s.id)) throw new BurrowError(`sandbox ${s.name} is exiting`, { kind: "not-running" });
    if (s.status !== "running" || !s.runtime.pins) throw new BurrowError(`sandbox ${s.name} is not running (state: ${s.status})`, { kind: "not-running" });
    if (!svc.backends.forKind(s.runtime.network).bridge)
      throw new BurrowError(`sandbox ${s.name} uses --network ${s.spec.network}: only sandboxes on bridge networks can be connected or disconnected`, {
        kind: "bad-input",
      });
    return s;
  }

  return {
    networkCreate: async (a: Args<"networkCreate">) => {
      if (a.driver && a.driver !== "bridge" && a.driver !== "macvlan")
        throw new BurrowError(`unsupported network driver ${quote(a.driver)}: use bridge or macvlan`, { kind: "bad-input" });
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
      svc.store.event("network-create", null, { network: network.name });
      return { name: network.name, warnings };
    },
    networkList: async () => {
      const { networks, warnings } = await cni.store.list();
      // Data only: the CLI formats it (table, --quiet, templates).
      return { networks: networks.map(networkSummary), warnings };
    },
    networkInspect: async (a: Args<"networkInspect">) => cni.store.inspect(a.name),
    networkRemove: async (a: Args<"networkRemove">) => {
      const removed: string[] = [];
      for (const ref of a.names) {
        const net = await cni.store.get(ref);
        if (net.isDefault) throw new BurrowError(`default network ${net.name} cannot be removed`, { kind: "network-default" });
        const users = svc.store.all().filter((s) => networksOf(s).includes(net.name));
        if (users.length && !a.force)
          throw new BurrowError(
            `network ${net.name} is used by sandbox${users.length > 1 ? "es" : ""} ${users.map((u) => u.name).join(", ")}: remove ${users.length > 1 ? "them" : "it"} first, or use network rm -f to disconnect ${users.length > 1 ? "them" : "it"}`,
            { kind: "network-in-use" },
          );
        for (const u of users) {
          if (u.status === "running" && cniRecord(u).attachments.some((x) => x.network === net.name)) await disconnect(net.name, u.id);
        }
        await cni.store.remove(net.name);
        for (const e of await cni.forget(net)) log.warn(`network rm ${net.name}: ${e.message}`);
        svc.store.event("network-remove", null, { network: net.name });
        removed.push(net.name);
      }
      return { removed };
    },
    networkPrune: async () => {
      const inUse = new Set(svc.store.all().flatMap(networksOf));
      const { removed, errors } = await cni.store.prune(inUse);
      for (const net of removed) for (const e of await cni.forget(net)) log.warn(`network prune ${net.name}: ${e.message}`);
      if (errors.length) throw new BurrowError(`network prune: ${errors.map(messageOf).join("; ")}`);
      return { removed: removed.map((n) => n.name) };
    },
    networkConnect: async (a: Args<"networkConnect">) => {
      const net = await cni.store.get(a.network);
      checkStaticAddressing(net, { aliases: a.aliases });
      const id = svc.store.find(a.sandbox).id;
      // Under the sandbox's lock: an exit, rm or another connect waits, so
      // the attachment is never missed by a release nor given a taken ethN.
      return svc.withLock(id, async () => {
        const s = running(id);
        const record = cniRecord(s);
        if (record.attachments.some((x) => x.network === net.name))
          throw new BurrowError(`sandbox ${s.name} is already connected to network ${net.name}`, { kind: "bad-input" });
        const used = new Set(record.attachments.map((x) => x.ifName));
        let i = 0;
        while (used.has(interfaceName(i))) i++;
        const att = await cni.attach(s, s.runtime.pins!.net, net, interfaceName(i), { aliases: [...a.aliases, ...s.spec.aliases] });
        record.attachments.push(att);
        s.runtime.backend = record;
        svc.store.update(s);
        await afterChange(s);
        svc.store.event("network-connect", s, { network: net.name });
        return { id: s.id };
      });
    },
    networkDisconnect: async (a: Args<"networkDisconnect">) => {
      const net = await cni.store.get(a.network);
      const id = svc.store.find(a.sandbox).id;
      await disconnect(net.name, id);
      return { id };
    },
    networkReload: async (a: Args<"networkReload">) => {
      const reloaded: string[] = [];
      const errors: string[] = [];
      const ids = a.all
        ? svc.store
            .all()
            .filter((s) => s.status === "running" && svc.backends.forKind(s.runtime.network).bridge)
            .map((s) => s.id)
        : a.sandboxes.flatMap((ref) => {
            try {
              return [svc.store.find(ref).id];
            } catch (e) {
              errors.push(messageOf(e));
              return [];
            }
          });
      for (const id of ids) {
        try {
          await svc.withLock(id, () => reload(running(id)));
          reloaded.push(id);
        } catch (e) {
          errors.push(`${svc.store.all().find((x) => x.id === id)?.name ?? id}: ${messageOf(e)}`);
        }
      }
      if (errors.length && !reloaded.length) throw new BurrowError(`network reload failed: ${errors.join("; ")}`);
      return { reloaded, errors };
    },
  };

  function disconnect(network: string, id: string): Promise<void> {
    return svc.withLock(id, async () => {
      const s = running(id);
      const record = cniRecord(s);
      const att = record.attachments.find((x) => x.network === network);
      if (!att) throw new BurrowError(`sandbox ${s.name} is not connected to network ${network}`, { kind: "bad-input" });
      await cni.detach(s, s.runtime.pins!.net, att);
      record.attachments = record.attachments.filter((x) => x !== att);
      s.runtime.backend = record;
      svc.store.update(s);
      await afterChange(s);
      svc.store.event("network-disconnect", s, { network });
    });
  }

  /**
   * podman's reloadContainerNetwork: DEL (tolerating what a firewall reload
   * already removed) and ADD again, keeping IP and MAC when the sandbox has
   * one network with one address.
   */
  async function reload(s: Sandbox): Promise<void> {
    const record = cniRecord(s);
    const keep = record.attachments.length === 1 && record.attachments[0]!.result.ips.length === 1;
    const next: CniAttachmentRecord[] = [];
    const errs = await runAll([...record.attachments].reverse().map((a) => () => cni.detach(s, s.runtime.pins!.net, a, true)));
    for (const e of errs) log.debug(`reload ${s.name}: ${e.message}`);
    try {
      for (const a of record.attachments) {
        const net = await cni.store.get(a.network);
        const ip = keep ? a.result.ips[0]!.address.split("/")[0] : undefined;
        const mac = keep ? a.result.interfaces.find((x) => x.name === a.ifName)?.mac : undefined;
        next.push(
          await cni.attach(s, s.runtime.pins!.net, net, a.ifName, {
            ip,
            mac,
            aliases: userAliases(s, a),
            ports: svc.paths.rootless ? undefined : s.runtime.ports,
          }),
        );
      }
    } finally {
      // What is attached now, even when a later network failed: the record
      // must match the plugins' state so a release tears down exactly that.
      record.attachments = next;
      s.runtime.backend = record;
      svc.store.update(s);
    }
    await afterChange(s);
    svc.store.event("network-reload", s);
  }
}
