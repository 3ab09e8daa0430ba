// The network backend interface (STYLE.md #2). One folder per backend, one
// registry (src/net/registry.ts) that the daemon makes and passes around.
// Everything the daemon decides by network mode is asked of the backend
// here; nothing outside src/net looks at a mode's kind. Every backend runs
// on the daemon's main thread; the sandbox's netns exists (pinned) before
// setup() is called.
import type { DnsView, EtcPolicy } from "../dns/etc-content.ts";
import type { Paths } from "../paths.ts";
import type { PortDriverName } from "../port-driver-names.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import type { HelperKind, HelperTrack } from "../state/helpers.ts";
import type { NetworkMode, NetworkModeKind, NetworkModeOf } from "./mode.ts";

/** What the namespace Worker must do for this backend. */
export interface NetnsPlan {
  newNet: boolean;
  joinNet?: string;
  /** Sandbox whose netns is shared (container:NAME). */
  netOf?: Sandbox;
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
  helpers?: { intend(kind: HelperKind): HelperTrack };
}

export interface NetworkSetup<R> extends DnsView {
  /** Persisted in the state row; teardown() gets it back after a restart. */
  record: R;
}

/** Who serves `-p` for a mode: a port driver, or a sentence saying why nobody can. */
export type PortChoice = { driver: PortDriverName } | { refuse: string };

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
  /** inspect's NetworkSettings.Networks entries (bridge networks). */
  inspectNetworks?(record: R | undefined): Record<string, object>;
}

/** Any backend, as the registry holds it. */
// `any`: the registry erases each backend's own mode and record types
export type AnyNetworkBackend = NetworkBackend<NetworkModeKind, any>;

export type { NetworkMode };
