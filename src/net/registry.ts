// The one registry of network backends (STYLE.md #2). The daemon makes it
// once and passes it in, as it does the port drivers' (src/ports/registry.ts).
// A new backend is one folder under src/net plus its lines here (the table,
// and NAMING when it has named networks).
import { BurrowError, messageOf } from "../errors.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import type { AnyNetworkBackend, NamedNetwork, NetworkBackend, NetworkDeps, NetworkNaming, NetworksCapability, WarmCapability } from "./backend.ts";
import type { HelperRow } from "../state/helpers.ts";
import { cniBackendWith, cniNaming, hasCniNetworks } from "./cni/named.ts";
import {
  hasNetavarkNetworks,
  netavarkBackendWith,
  networksDirOf,
  netavarkInstalled,
  netavarkNaming,
  type SharedRootlessNamespace,
} from "./netavark/backend.ts";
import { PodmanRootlessNetns } from "./netavark/podman-netns.ts";
import { sharedPause } from "../podman-pause.ts";
import { helperConf } from "../machine/helpers.ts";
import { containerBackend } from "./container/backend.ts";
import { hostBackend } from "./host/backend.ts";
import { parseNetworkMode, type NamedNetworkKind, type NetworkMode, type NetworkModeKind, type NetworkModeOf } from "./mode.ts";
import { noneBackend } from "./none/backend.ts";
import { nsPathBackend } from "./ns/backend.ts";
import { pastaBackend } from "./pasta/backend.ts";
import { slirp4netnsBackend } from "./slirp4netns/backend.ts";
import { quote } from "../quote.ts";

// `any`: each backend keeps its own record type
type BackendTable = { [K in NetworkModeKind]: NetworkBackend<K, any> };

export interface NetworkBackends {
  /** The backend of a parsed --network mode. */
  forMode(mode: NetworkMode): AnyNetworkBackend;
  /** The backend a state row names (runtime.network); throws for a kind this build lacks. */
  forKind(kind: string): AnyNetworkBackend;
  /** Named networks: `network create/ls/inspect/rm/prune/connect/disconnect/reload`, and their recovery. */
  // `any`: the record type of whichever backend serves them
  readonly networks: NetworksCapability<NetworkModeKind, any>;
  /** `--network` parsed with this daemon's named-network backend (see chooseNamedBackend). */
  parse(raw: string): NetworkMode;
  /** Which backend serves named networks, and why (`info`). */
  named(): NamedChoice;
  /** Rootless: the helper connecting the shared namespace bridge networks live in, its pid while it runs, and why (`info`). */
  sharedNamespace(): SharedNamespaceInfo | null;
  /** Every backend's networks made ready ahead (WarmCapability), for the daemon's housekeeping. */
  readonly warm: {
    /** Whether a helper ledger row is one of them (the sweep spares it). */
    claims(row: HelperRow): boolean;
    /** The daemon exits: end them all, make no more. */
    drop(): Promise<void>;
    /** The daemon starts: remove what an earlier one left. */
    clearLeftovers(): Promise<Error[]>;
  };
}

export interface SharedNamespaceInfo {
  helper: string;
  pid: number | null;
  why: string;
}

export interface NamedChoice {
  kind: NamedNetworkKind;
  why: string;
}

/**
 * podman 4's rule for which backend serves named networks: BURROW_NETWORK_BACKEND
 * (burrow's own override), else containers.conf network_backend; else CNI
 * when the user has CNI networks or sandboxes on them already (an upgrade
 * keeps a 0.2.0 user's networks), else netavark when it is installed (and
 * CNI's plugins are not the only ones there), else CNI. Pure.
 */
export function chooseNamedBackend(o: { env?: string; conf?: "cni" | "netavark"; cniInUse: boolean; netavarkInstalled: boolean }): NamedChoice {
  if (o.env === "cni" || o.env === "netavark") return { kind: o.env, why: `BURROW_NETWORK_BACKEND=${o.env}` };
  if (o.conf) return { kind: o.conf, why: `containers.conf network_backend = "${o.conf}"` };
  if (o.cniInUse) return { kind: "cni", why: "CNI networks or sandboxes on them exist already" };
  if (o.netavarkInstalled) return { kind: "netavark", why: "netavark is installed and no CNI network exists" };
  return { kind: "cni", why: "netavark is not installed" };
}

/** A backend's default network, made up when no file defines it: not listed as the other backend's. */
function isImplicitDefault(kind: NamedNetworkKind, name: string): boolean {
  return kind === "cni" ? name === "burrow" : name === (helperConf().defaultNetwork ?? "podman");
}

/** A row's named-network kind (the one its spec was parsed with at create). */
function rowNamedKind(s: Pick<Sandbox, "runtime">): NamedNetworkKind {
  return s.runtime.network === "netavark" ? "netavark" : "cni";
}

/** The named networks a row's spec asked for, read with the backend it was made with. */
export function askedNetworks(s: Pick<Sandbox, "spec" | "runtime">): string[] {
  try {
    return networkNames(parseNetworkMode(s.spec.network, { named: rowNamedKind(s) }));
  } catch {
    return [];
  }
}

/** A row's --network, parsed with the named-network backend it was made with. */
export function modeOfRow(s: Pick<Sandbox, "spec" | "runtime">): NetworkMode {
  return parseNetworkMode(s.spec.network, { named: rowNamedKind(s) });
}

/** Every network a sandbox names: attached now, then asked for at create. */
export function networksOfRow(s: Pick<Sandbox, "spec" | "runtime">): string[] {
  return [...new Set([...attachedNetworks(s), ...askedNetworks(s)])];
}

// Which named networks a mode or a row names, by backend: pure, so that
// inspect and the daemon's bookkeeping ask it without the backends.
const NAMING: { [K in NetworkModeKind]?: NetworkNaming<K> } = { cni: cniNaming, netavark: netavarkNaming };

/** The named networks a mode attaches to ("bridge" is the default network); empty for modes without any. */
export function networkNames(mode: NetworkMode): string[] {
  const naming = NAMING[mode.kind] as NetworkNaming<typeof mode.kind> | undefined;
  return naming ? naming.names(mode as NetworkModeOf<typeof mode.kind>) : [];
}

/** The named networks a sandbox's row says it is attached to now (its backend's record). */
export function attachedNetworks(s: Pick<Sandbox, "runtime">): string[] {
  const kind = s.runtime.network;
  const naming = Object.hasOwn(NAMING, kind) ? NAMING[kind as NetworkModeKind] : undefined;
  return naming ? naming.attached(s) : [];
}

/**
 * podman 5's rootless namespace, when the holder joined podman's user
 * namespace (src/podman-pause.ts): netavark's networks are podman's then,
 * bridge and names alike (src/net/netavark/podman-netns.ts). Null otherwise.
 */
function podmanNetns(deps: NetworkDeps): PodmanRootlessNetns | null {
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (!deps.paths.rootless || !xdg) return null;
  // The holder joined podman's user namespace (its map, src/userns/holder.ts), or this daemon is in it now:
  // the session's sandboxes stay on podman's namespace even after podman's pause process is gone.
  if (process.env.BURROW_HOLDER_MAP !== "podman" && sharedPause() === null) return null;
  // The holder is this daemon's parent, the supervisor (src/userns/supervisor.ts).
  return new PodmanRootlessNetns(deps.paths, process.ppid, xdg);
}

/** podman's namespace as netavark's backend holds and releases it: released when no sandbox but the one leaving is on it. */
function podmanSharing(ns: PodmanRootlessNetns, deps: NetworkDeps): SharedRootlessNamespace {
  let busy = 0;
  // A sandbox being made (not exited, its record not saved yet) counts, as one whose teardown has not run.
  const attached = (exceptId: string) =>
    deps.sandboxes().some((s) => s.id !== exceptId && s.runtime.network === "netavark" && (s.status !== "exited" || !!s.runtime.backend));
  return {
    ns,
    podman: { configDir: ns.configDir },
    async hold(fn) {
      busy++;
      try {
        return await fn();
      } finally {
        busy--;
      }
    },
    release: async (exceptId) => (busy > 0 || attached(exceptId) ? [] : ns.stop()),
  };
}

export function createNetworkBackends(deps: NetworkDeps): NetworkBackends {
  // Counted lazily: the backends are made here, and asked later.
  const podmanNs = podmanNetns(deps);
  const podman = podmanNs ? podmanSharing(podmanNs, deps) : null;
  // netavark's sandboxes keep burrow's own rootless namespace only while they live in it.
  const onBridge = (kind: string) => forKind(kind).bridge && !(podman && kind === "netavark");
  const cni = cniBackendWith(deps, onBridge);
  const netavark = netavarkBackendWith({ ...deps, shared: podman ?? cni.shared });
  const table: BackendTable = {
    none: noneBackend,
    host: hostBackend,
    ns: nsPathBackend,
    container: containerBackend,
    slirp4netns: slirp4netnsBackend,
    pasta: pastaBackend,
    cni,
    netavark,
  };
  const warmCaps = (): WarmCapability[] => Object.values(table).flatMap((b) => (b.warm ? [b.warm as WarmCapability] : []));
  const forKind = (kind: string): AnyNetworkBackend => {
    const b = Object.hasOwn(table, kind) ? table[kind as NetworkModeKind] : undefined;
    if (!b) throw new BurrowError(`network mode ${quote(kind)} is not available in this build`, { kind: "unsupported" });
    // The one place a backend's own mode and record types are erased: the
    // table above checked that each key holds the backend of that kind.
    return b as AnyNetworkBackend;
  };
  let choice: NamedChoice | null = null;
  const named = (): NamedChoice =>
    (choice ??= chooseNamedBackend({
      env: process.env.BURROW_NETWORK_BACKEND,
      conf: helperConf().networkBackend,
      cniInUse: hasCniNetworks(deps.paths) || deps.sandboxes().some((s) => s.runtime.network === "cni"),
      netavarkInstalled: netavarkInstalled(),
    }));
  // Mode and record types are erased here as forKind's are.
  const caps = { cni: cni.networks, netavark: netavark.networks } as Record<NamedNetworkKind, NetworksCapability<NetworkModeKind, any>>;
  // The other backend's networks are listed too when it has files of its own (not just its implicit default).
  const hasFiles: Record<NamedNetworkKind, () => boolean> = {
    cni: () => hasCniNetworks(deps.paths),
    netavark: () => hasNetavarkNetworks(networksDirOf(deps.paths)),
  };
  return {
    forMode: (mode) => forKind(mode.kind),
    forKind,
    networks: combined(
      () => named().kind,
      caps,
      hasFiles,
      (s) => caps[rowNamedKind(s)],
    ),
    parse: (raw) => parseNetworkMode(raw, { named: named().kind }),
    named,
    // The namespace the named networks' bridges are in: podman's, when netavark's are shared with podman.
    sharedNamespace: () => (podmanNs && named().kind === "netavark" ? podmanNs.helperInfo() : (cni.shared?.ns.helperInfo() ?? null)),
    warm: {
      claims: (row) => warmCaps().some((w) => w.claims(row)),
      drop: async () => {
        await Promise.all(warmCaps().map((w) => w.drop()));
      },
      clearLeftovers: async () => (await Promise.all(warmCaps().map((w) => w.clearLeftovers(deps.paths)))).flat(),
    },
  };
}

/**
 * One networks capability over both backends: what a user asks of networks
 * goes to the chosen backend (a network only the other one has is found
 * there, listed with its backend, and removed by it); what concerns a
 * sandbox, to the backend its row was made with; housekeeping, to both.
 */
function combined(
  chosenKind: () => NamedNetworkKind,
  caps: Record<NamedNetworkKind, NetworksCapability<NetworkModeKind, any>>,
  hasFiles: Record<NamedNetworkKind, () => boolean>,
  of: (s: Sandbox) => NetworksCapability<NetworkModeKind, any>,
): NetworksCapability<NetworkModeKind, any> {
  const all = Object.values(caps);
  const chosen = () => caps[chosenKind()];
  const otherKind = (): NamedNetworkKind => (chosenKind() === "cni" ? "netavark" : "cni");
  /** Whose each network given out by get() is. */
  const owner = new WeakMap<NamedNetwork, NamedNetworkKind>();
  const ownerOf = (net: NamedNetwork) => caps[owner.get(net) ?? chosenKind()];
  /** The chosen backend's answer; for a name it does not know, the other's (when it has networks). */
  async function either<T>(fn: (c: NetworksCapability<NetworkModeKind, any>, kind: NamedNetworkKind) => Promise<T>): Promise<T> {
    try {
      return await fn(chosen(), chosenKind());
    } catch (e) {
      const other = otherKind();
      if (!(e instanceof BurrowError) || e.kind !== "not-found" || !hasFiles[other]()) throw e;
      return await fn(caps[other], other).catch(() => {
        throw e;
      });
    }
  }
  return {
    names: (mode) => chosen().names(mode),
    attached: (s) => attachedNetworks(s),
    checkCreate: (mode, req) => chosen().checkCreate(mode, req),
    create: (req) => chosen().create(req),
    async list() {
      const mine = await chosen().list();
      const other = otherKind();
      if (!hasFiles[other]()) return mine;
      const theirs = await caps[other].list().catch((e) => ({ networks: [], warnings: [`${other} networks: ${messageOf(e)}`] }));
      const names = new Set(mine.networks.map((n) => n.name));
      const extra = theirs.networks.filter((n) => !names.has(n.name) && !isImplicitDefault(other, n.name));
      if (!extra.length) return mine;
      const kind = chosenKind();
      return {
        networks: [...mine.networks.map((n) => ({ ...n, backend: kind })), ...extra.map((n) => ({ ...n, backend: other }))].sort((a, b) =>
          a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
        ),
        warnings: [...mine.warnings, ...theirs.warnings],
      };
    },
    inspect: (ref) => either((c) => c.inspect(ref)),
    get: (ref) =>
      either(async (c, kind) => {
        const net = await c.get(ref);
        owner.set(net, kind);
        return net;
      }),
    remove: (net) => ownerOf(net).remove(net),
    prune: (inUse) => chosen().prune(inUse),
    forget: (net) => ownerOf(net).forget(net),
    checkConnect: (net, opts) => ownerOf(net).checkConnect(net, opts),
    connect(s, netns, net, aliases) {
      const mine = owner.get(net) ?? chosenKind();
      if (mine !== rowNamedKind(s))
        throw new BurrowError(
          `network ${net.name} is a ${mine} network and sandbox ${s.name} is on ${rowNamedKind(s)} networks: a sandbox joins networks of one backend`,
          {
            kind: "bad-input",
          },
        );
      return of(s).connect(s, netns, net, aliases);
    },
    disconnect: (s, netns, network) => of(s).disconnect(s, netns, network),
    reload: (s, netns, opts) => of(s).reload(s, netns, opts),
    dnsView: (s) => of(s as Sandbox).dnsView(s),
    async settled(id) {
      for (const c of all) await c.settled(id);
    },
    releaseUnrecorded: (s, netns) => of(s).releaseUnrecorded(s, netns),
    async releaseByRecords(id, netns) {
      const errors: Error[] = [];
      for (const c of all) errors.push(...(await c.releaseByRecords(id, netns)));
      return errors;
    },
    async supervise() {
      for (const c of all) await c.supervise();
    },
    claims(row, used) {
      for (const c of all) {
        const r = c.claims(row, used);
        if (r !== undefined) return r;
      }
      return undefined;
    },
    sweep(used) {
      for (const c of all) c.sweep(used);
    },
    async restore() {
      // Every backend's, also when one fails; the failures together.
      const failed: string[] = [];
      for (const c of all) await c.restore().catch((e) => failed.push(messageOf(e)));
      if (failed.length) throw new Error(failed.join("; "));
    },
  };
}
