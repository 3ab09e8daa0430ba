// The one registry of network backends (STYLE.md #2). The daemon makes it
// once and passes it in, as it does the port drivers' (src/ports/registry.ts).
// A new backend is one folder under src/net plus its lines here (the table,
// and NAMING when it has named networks).
import { BurrowError } from "../errors.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import type { AnyNetworkBackend, NetworkBackend, NetworkDeps, NetworkNaming, NetworksCapability } from "./backend.ts";
import { cniBackendWith, cniNaming, hasCniNetworks } from "./cni/named.ts";
import { netavarkBackendWith, netavarkInstalled, netavarkNaming } from "./netavark/backend.ts";
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

export function createNetworkBackends(deps: NetworkDeps): NetworkBackends {
  // Counted lazily: the backends are made here, and asked later.
  const onBridge = (kind: string) => forKind(kind).bridge;
  const cni = cniBackendWith(deps, onBridge);
  const netavark = netavarkBackendWith({ ...deps, shared: cni.shared });
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
  return {
    forMode: (mode) => forKind(mode.kind),
    forKind,
    networks: combined(
      () => caps[named().kind],
      (s) => caps[rowNamedKind(s)],
      Object.values(caps),
    ),
    parse: (raw) => parseNetworkMode(raw, { named: named().kind }),
    named,
  };
}

/**
 * One networks capability over both backends: what a user asks of networks
 * goes to the chosen backend; what concerns a sandbox, to the backend its
 * row was made with; housekeeping, to both.
 */
function combined(
  chosen: () => NetworksCapability<NetworkModeKind, any>,
  of: (s: Sandbox) => NetworksCapability<NetworkModeKind, any>,
  all: NetworksCapability<NetworkModeKind, any>[],
): NetworksCapability<NetworkModeKind, any> {
  return {
    names: (mode) => chosen().names(mode),
    attached: (s) => attachedNetworks(s),
    checkCreate: (mode, req) => chosen().checkCreate(mode, req),
    create: (req) => chosen().create(req),
    list: () => chosen().list(),
    inspect: (ref) => chosen().inspect(ref),
    get: (ref) => chosen().get(ref),
    remove: (net) => chosen().remove(net),
    prune: (inUse) => chosen().prune(inUse),
    forget: (net) => chosen().forget(net),
    checkConnect: (net, opts) => chosen().checkConnect(net, opts),
    connect: (s, netns, net, aliases) => of(s).connect(s, netns, net, aliases),
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
      for (const c of all) await c.restore();
    },
  };
}
