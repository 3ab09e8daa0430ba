// The network backend interface (STYLE.md #2). One folder per backend, one
// registry (src/net/registry.ts) that the daemon makes and passes around.
// Everything the daemon decides by network mode is asked of the backend
// here; nothing outside src/net looks at a mode's kind. Every backend runs
// on the daemon's main thread; the sandbox's netns exists (pinned) before
// setup() is called.
import type { DnsView, EtcPolicy } from "../dns/etc-content.ts";
import type { Paths } from "../paths.ts";
import type { PortDriverName } from "../port-driver-names.ts";
import type { PortRecord, Sandbox } from "../state/sandboxes.ts";
import type { HelperKind, HelperLedger, HelperRow, HelperTrack } from "../state/helpers.ts";
import type { NetworkMode, NetworkModeKind, NetworkModeOf } from "./mode.ts";

/** What the namespace Worker must do for this backend. */
export interface NetnsPlan {
  newNet: boolean;
  joinNet?: string;
  /** Sandbox whose netns is shared (container:NAME). */
  netOf?: Sandbox;
  /** Sysctls (paths under /proc/sys/net, values) written in a new netns before the backend sets it up. */
  netSysctls?: Array<[string, string]>;
}

export interface PlanContext {
  paths: Paths;
  /** A sandbox by name or id (throws not-found). */
  find(ref: string): Sandbox;
}

export interface SetupContext {
  paths: Paths;
  sandbox: Sandbox;
  /** Pinned netns path of this sandbox. */
  netns: string;
  /** Directory for backend-owned files (logs, sockets). */
  dir: string;
  /**
   * Records a helper before it is spawned (throws when that cannot be
   * written: spawn nothing then); pass the track to the spawner.
   */
  helpers?: {
    intend(kind: HelperKind): HelperTrack;
    /** Records a helper started ahead of any sandbox, for a network made ready (WarmCapability): owned by nobody yet. */
    intendWarm(kind: HelperKind): HelperTrack;
    /** Makes a helper started ahead this sandbox's: its ledger row now names it. */
    adopt(track: HelperTrack): void;
  };
  /** A network made ready ahead (WarmCapability.take) whose netns this sandbox joined: setup adopts what runs there. */
  warm?: WarmNetwork;
  /**
   * A command prefix that runs a program in a mount namespace of its own
   * that propagates nowhere (the enter helper's -P), when the daemon has the
   * helper in memory: slirp4netns's --enable-sandbox needs one.
   */
  privateMounts?: string[];
}

/**
 * A network namespace a backend made ready before anyone asked for it, its
 * helper already attached (slirp4netns, running and configured): a create
 * of a mode that fits joins it instead of making a new netns, and the
 * backend's setup adopts the helper instead of starting one, which takes
 * slirp4netns's start (~5 ms) off the create.
 */
export interface WarmNetwork {
  /** Its pinned network namespace: the create's namespace Worker joins it. */
  readonly netns: string;
  /** Ends it (its helper killed, its pin removed) unless setup adopted it; idempotent. A create that fails before setup calls it. */
  release(): Promise<Error[]>;
}

/** A backend's networks made ready ahead (docs/decisions.md "slirp4netns started ahead"). */
export interface WarmCapability<K extends NetworkModeKind = NetworkModeKind> {
  /** The one made ready for `mode` (waiting for one being made for it), now the caller's; null when none fits. */
  take(mode: NetworkModeOf<K>): Promise<WarmNetwork | null>;
  /** Whether a helper ledger row is one this daemon made ahead and holds (the ledger's sweep spares it). */
  claims(row: HelperRow): boolean;
  /** Ends what is ready or being made, and makes no more (the daemon exits). */
  drop(): Promise<void>;
  /** At daemon start: removes what an earlier daemon made ahead and left (its pins; the ledger's sweep kills its helpers). */
  clearLeftovers(paths: Paths): Promise<Error[]>;
}

export interface NetworkSetup<R> extends DnsView {
  /** Persisted in the state row; teardown() gets it back after a restart. */
  record: R;
}

/** Who serves `-p` for a mode: a port driver, or a sentence saying why nobody can. */
/** keepClientAddress=false: the user turned the client's address off (slirp4netns:source_ip=false); absent means keep it where the driver can. */
export type PortChoice = { driver: PortDriverName; keepClientAddress?: boolean } | { refuse: string };

export interface NetworkBackend<K extends NetworkModeKind = NetworkModeKind, R = unknown> {
  readonly kind: K;
  /** /etc/hosts and resolv.conf: see EtcPolicy. */
  readonly etc: EtcPolicy;
  /** Bridge networks: --ip/--mac-address/--network-alias apply, and `network connect` and friends. */
  readonly bridge: boolean;
  /** Does `exec` switch into the sandbox's netns? (host: the caller is in it already, and rootless could not.) */
  readonly entersNetns: boolean;
  /**
   * Validates the mode before anything is created (throws BurrowError) and
   * says what the namespace Worker must do.
   */
  plan(mode: NetworkModeOf<K>, ctx: PlanContext): Promise<NetnsPlan> | NetnsPlan;
  /** Which port driver serves `-p` for this mode. */
  ports(mode: NetworkModeOf<K>, ctx: { rootless: boolean; plan: NetnsPlan }): PortChoice;
  /** Absent for backends that start nothing (none, host, ns, container). */
  setup?(mode: NetworkModeOf<K>, ctx: SetupContext): Promise<NetworkSetup<R>>;
  /** Undoes setup from its record; returns every error (never stops at the first). */
  teardown?(record: R, ctx: SetupContext): Promise<Error[]>;
  /** Is the backend's helper still alive? (for ps/inspect) */
  healthy?(record: R): boolean;
  /**
   * Whether this mode's helper carries the sandbox's loopback ports to the
   * host's beside every netfilter hook of the sandbox (pasta's -T/-U other
   * than none): egress rules cannot hold there (src/egress/conflicts.ts).
   */
  splicesLoopback?(mode: NetworkModeOf<K>): boolean;
  /** inspect's NetworkSettings.Networks entries (bridge networks). */
  inspectNetworks?(record: R | undefined): Record<string, object>;
  /** Networks made ready ahead of the next create (slirp4netns). */
  readonly warm?: WarmCapability<K>;
  /** Named networks: the backends of bridge networks have them (see NetworksCapability). */
  readonly networks?: NetworksCapability<K, R>;
}

/** What the registry needs to make the backends (src/daemon/main.ts gives it). */
export interface NetworkDeps {
  paths: Paths;
  /** Every sandbox row: a shared namespace stays while a sandbox on a named network needs it. */
  sandboxes(): Sandbox[];
  /** The helper ledger (src/state/helpers.ts); absent in unit tests. */
  helpers?: HelperLedger;
  /** A line in `burrow events` (a shared helper restarted). */
  report?(type: string, attrs: Record<string, unknown>): void;
}

/** A named network as the daemon handles it; the backend keeps the rest (its file, its configuration). */
export interface NamedNetwork {
  readonly name: string;
  /** The default network (`--network bridge`): never removed. */
  readonly isDefault: boolean;
}

/** `network create`'s request (src/protocol.ts NetworkCreate, validated). */
export interface NetworkCreateRequest {
  name?: string;
  driver?: string;
  subnets: string[];
  gateway?: string;
  ipRange?: string;
  ipv6: boolean;
  internal: boolean;
  disableDns: boolean;
  labels: Record<string, string>;
}

/** One network of `network ls`: podman 4's network JSON shape (types.Network), plus what the backend adds. */
// A type, not an interface: it must fit the reply schema's open record (protocol.ts Handlers).
export type NetworkSummary = {
  name: string;
  id: string;
  driver: string;
  network_interface?: string;
  created?: string;
  subnets: Array<{ subnet: string; gateway?: string; lease_range?: { start_ip?: string; end_ip?: string } }>;
  ipv6_enabled: boolean;
  internal: boolean;
  dns_enabled: boolean;
  labels?: Record<string, string>;
  ipam_options?: { driver: string };
  /** Which backend serves it: only when networks of both backends are listed. */
  backend?: string;
};

/** --ip, --mac-address and --network-alias, as create and `network connect` give them. */
export interface StaticAddressing {
  ip?: string;
  mac?: string;
  aliases?: string[];
}

/**
 * Which named networks a mode or a row names: pure, so inspect and the
 * registry's networkNames()/attachedNetworks() ask it without a daemon.
 */
export interface NetworkNaming<K extends NetworkModeKind = NetworkModeKind> {
  /** The networks a mode attaches to, in order ("bridge" is the default network). */
  names(mode: NetworkModeOf<K>): string[];
  /** The networks a sandbox's row (of this backend) says it is attached to now. */
  attached(s: Pick<Sandbox, "runtime">): string[];
}

/**
 * Named networks (`network create/ls/inspect/rm/prune/connect/disconnect/
 * reload`, `--network NAME[,NAME]`), as a capability of the backend that
 * serves them. The daemon keeps the sandbox's lock, its row, its /etc
 * files, its ports and the events; the backend keeps its networks' files,
 * its attachments (the record in `runtime.backend`), and every shared
 * namespace and helper they need. Daemon main thread.
 */
export interface NetworksCapability<K extends NetworkModeKind = NetworkModeKind, R = unknown> extends NetworkNaming<K> {
  // What create needs (src/daemon/create.ts), before anything is made.
  /** The networks exist, are not given twice, and --ip/--mac-address/--network-alias fit the first. */
  checkCreate(mode: NetworkModeOf<K>, req: StaticAddressing): Promise<void>;

  // The networks themselves.
  create(req: NetworkCreateRequest): Promise<{ name: string; warnings: string[] }>;
  /** Every network, and a warning for each file that cannot be used. */
  list(): Promise<{ networks: NetworkSummary[]; warnings: string[] }>;
  /** `network inspect`'s view of one network. */
  inspect(nameOrId: string): Promise<{ name: string }>;
  /** A network by name or id (throws not-found, or why its file cannot be used). */
  get(nameOrId: string): Promise<NamedNetwork>;
  /** Removes the network's own definition (throws). */
  remove(net: NamedNetwork): Promise<void>;
  /** Removes every network but the default and `inUse`; failures are collected. */
  prune(inUse: Set<string>): Promise<{ removed: NamedNetwork[]; errors: Error[] }>;
  /** After remove/prune: what the network left (allocations, its bridge); errors returned, not thrown. */
  forget(net: NamedNetwork): Promise<Error[]>;

  // A running sandbox's attachments: the record is `runtime.backend`.
  /** `network connect`'s --alias values and the network, checked before the sandbox is looked at. */
  checkConnect(net: NamedNetwork, opts: StaticAddressing): void;
  /** Attaches `net` (throws when attached already); returns the new record for the row. */
  connect(s: Sandbox, netns: string, net: NamedNetwork, aliases: string[]): Promise<R>;
  /** Detaches `network` (throws when not attached); returns the new record for the row. */
  disconnect(s: Sandbox, netns: string, network: string): Promise<R>;
  /**
   * podman's reload: detach (tolerating what a firewall reload removed) and
   * attach again, keeping IP and MAC where it can. `save` gets the record
   * of what is attached now, even when a network failed (then it throws).
   */
  reload(s: Sandbox, netns: string, opts: { ports?: PortRecord[]; save(record: R): void }): Promise<void>;
  /** What resolv.conf and /etc/hosts need from a sandbox's attachments. */
  dnsView(s: Pick<Sandbox, "runtime">): Promise<DnsView>;

  // Crash recovery and the helper sweep (src/daemon/create-retry.ts).
  /** Waits (a while) until nothing this backend started for sandbox `id` still runs: a dead daemon's plugin runs to its end. */
  settled(id: string): Promise<void>;
  /** Undoes what a create may have attached before it could record it (from the spec's networks). */
  releaseUnrecorded(s: Sandbox, netns: string): Promise<void>;
  /**
   * Detaches everything the backend's own records (CNI: its results cache)
   * say sandbox `id` has, for a sandbox whose row is gone with the state
   * database; errors are returned. Call while its netns pin still exists.
   */
  releaseByRecords(id: string, netns: string): Promise<Error[]>;
  /** Housekeeping: restarts a dead shared helper, tears down an unused shared namespace. */
  supervise(): Promise<void>;
  /** A helper row of this backend's: whether it is still needed; undefined for rows that are not its own. */
  claims(row: HelperRow, used: (network: string) => boolean): boolean | undefined;
  /** Stops the per-network helpers (and their files) of networks no sandbox is on. */
  sweep(used: (network: string) => boolean): void;
  /** After a logout removed the runtime dir: the shared namespace's pins and files again. */
  restore(): Promise<void>;
}

/** Any backend, as the registry holds it. */
// `any`: the registry erases each backend's own mode and record types
export type AnyNetworkBackend = NetworkBackend<NetworkModeKind, any>;

export type { NetworkMode };
