// Network operations: named (bridge) networks and attaching running
// sandboxes to them, through the `networks` capability of the backend that
// serves them (src/net/backend.ts). Here: the sandbox's lock, row, /etc
// files, ports and events. Daemon main thread.
import type * as v from "valibot";
import { BurrowError, messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { sandboxDir } from "../paths.ts";
import type { Ops } from "../protocol.ts";
import { attachedNetworks, networksOfRow } from "../net/registry.ts";
import { etcContent } from "../dns/etc-content.ts";
import { servedByDnat } from "../port-dnat.ts";
import { etcFiles } from "../sandbox/files.ts";
import { rewriteEtcFile } from "./ownership.ts";
import { resolvConfServers } from "./egress.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import type { SandboxService } from "./service.ts";

type Args<K extends keyof typeof Ops> = v.InferOutput<(typeof Ops)[K]>;

/** Networks a sandbox names in its spec or is attached to now. */
const networksOf = networksOfRow;

export function networkHandlers(svc: SandboxService) {
  const nets = svc.backends.networks;

  /**
   * After the attachments changed (already saved in the row): rewrites
   * hosts/resolv.conf and points published ports at the new primary address.
   * A port that cannot be re-published is recorded, not thrown: the network
   * change itself happened.
   */
  async function afterChange(s: Sandbox): Promise<void> {
    const view = await nets.dnsView(s);
    const oldAddress = s.runtime.address;
    const oldAddress6 = s.runtime.address6;
    s.runtime.address = view.address;
    s.runtime.ipv6 = view.ipv6 || undefined;
    s.runtime.address6 = view.address6;
    svc.store.update(s);
    const files = etcFiles(sandboxDir(svc.paths, s.id));
    const policy = svc.backends.forKind(s.runtime.network).etc;
    const content = etcContent({ policy, hostname: s.spec.hostname, name: s.name, dns: resolvConfServers(s.spec), net: view });
    // After a logout the sandbox reads unlinked originals (src/daemon/ownership.ts).
    rewriteEtcFile(files.hosts, "/etc/hosts", s, content.hosts);
    rewriteEtcFile(files.resolv, "/etc/resolv.conf", s, content.resolv);
    if (
      s.runtime.ports?.length &&
      (oldAddress !== view.address || oldAddress6 !== view.address6) &&
      (svc.paths.rootless || !s.runtime.ports.every(servedByDnat))
    ) {
      // The forwarder (rootless; rootful: ports on [::1]) connects to the primary address: re-publish the same host ports.
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
      const { name, warnings } = await nets.create(a);
      svc.store.event("network-create", null, { network: name });
      return { name, warnings };
    },
    // Data only: the CLI formats it (table, --quiet, templates).
    networkList: async () => nets.list(),
    networkInspect: async (a: Args<"networkInspect">) => nets.inspect(a.name),
    networkRemove: async (a: Args<"networkRemove">) => {
      const removed: string[] = [];
      for (const ref of a.names) {
        const net = await nets.get(ref);
        if (net.isDefault) throw new BurrowError(`default network ${net.name} cannot be removed`, { kind: "network-default" });
        const users = svc.store.all().filter((s) => networksOf(s).includes(net.name));
        if (users.length && !a.force)
          throw new BurrowError(
            `network ${net.name} is used by sandbox${users.length > 1 ? "es" : ""} ${users.map((u) => u.name).join(", ")}: remove ${users.length > 1 ? "them" : "it"} first, or use network rm -f to disconnect ${users.length > 1 ? "them" : "it"}`,
            { kind: "network-in-use" },
          );
        for (const u of users) {
          if (u.status === "running" && attachedNetworks(u).includes(net.name)) await disconnect(net.name, u.id);
        }
        await nets.remove(net);
        for (const e of await nets.forget(net)) log.warn(`network rm ${net.name}: ${e.message}`);
        svc.store.event("network-remove", null, { network: net.name });
        removed.push(net.name);
      }
      return { removed };
    },
    networkPrune: async () => {
      const inUse = new Set(svc.store.all().flatMap(networksOf));
      const { removed, errors } = await nets.prune(inUse);
      for (const net of removed) for (const e of await nets.forget(net)) log.warn(`network prune ${net.name}: ${e.message}`);
      if (errors.length) throw new BurrowError(`network prune: ${errors.map(messageOf).join("; ")}`);
      return { removed: removed.map((n) => n.name) };
    },
    networkConnect: async (a: Args<"networkConnect">) => {
      const net = await nets.get(a.network);
      nets.checkConnect(net, { aliases: a.aliases });
      const id = svc.store.find(a.sandbox).id;
      // Under the sandbox's lock: an exit, rm or another connect waits, so
      // the attachment is never missed by a release nor given a taken ethN.
      return svc.withLock(id, async () => {
        const s = running(id);
        s.runtime.backend = await nets.connect(s, s.runtime.pins!.net, net, [...a.aliases, ...s.spec.aliases]);
        svc.store.update(s);
        await afterChange(s);
        svc.store.event("network-connect", s, { network: net.name });
        return { id: s.id };
      });
    },
    networkDisconnect: async (a: Args<"networkDisconnect">) => {
      const net = await nets.get(a.network);
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
      s.runtime.backend = await nets.disconnect(s, s.runtime.pins!.net, network);
      svc.store.update(s);
      await afterChange(s);
      svc.store.event("network-disconnect", s, { network });
    });
  }

  /** podman's reloadContainerNetwork (the backend's reload), then the row, /etc files and ports. */
  async function reload(s: Sandbox): Promise<void> {
    await nets.reload(s, s.runtime.pins!.net, {
      // Not the ones `port add` gave the builtin forwarder: the rules are only for the others.
      ports: svc.paths.rootless ? undefined : s.runtime.ports?.filter((p) => !p.forwarded),
      save: (record) => {
        s.runtime.backend = record;
        svc.store.update(s);
      },
    });
    await afterChange(s);
    svc.store.event("network-reload", s);
  }
}
