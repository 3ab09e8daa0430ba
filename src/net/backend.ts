// The network backend interface (STYLE.md #2). One folder per backend, one
// registry (src/net/registry.ts). Every backend runs on the daemon's main
// thread; the sandbox's netns exists (pinned) before setup() is called.
import type { Paths } from "../paths.ts";
import type { NetworkMode } from "./mode.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import type { HelperKind, HelperTrack } from "../state/helpers.ts";

/** What the namespace Worker must do for this backend. */
export interface NetnsPlan {
  newNet: boolean;
  joinNet?: string;
  /** Sandbox id whose netns is shared (container:NAME). */
  netOf?: string;
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

export interface NetworkSetup {
  /** Persisted in the state row; teardown() gets it back after a restart. */
  record: Record<string, unknown>;
  /** The sandbox's own address on its primary network (port forwarding target). */
  address?: string;
  /** Nameservers to list first in resolv.conf. */
  nameservers?: string[];
  /** Address /etc/hosts maps the hostname to. */
  hostsAddress?: string;
  /** Search domains to add to resolv.conf. */
  searchDomains?: string[];
  /** Keep IPv6 nameservers of the host (the sandbox has IPv6). */
  ipv6?: boolean;
  gateway?: string;
  prefixLength?: number;
}

export interface NetworkBackend {
  /** Validates the mode's options before anything is created; throws BurrowError. */
  validate(mode: NetworkMode, paths: Paths): Promise<void> | void;
  plan(mode: NetworkMode): NetnsPlan;
  setup(mode: NetworkMode, ctx: SetupContext): Promise<NetworkSetup>;
  /** Undoes setup from its record; returns every error (never stops at the first). */
  teardown(record: Record<string, unknown>, ctx: SetupContext): Promise<Error[]>;
  /** Is the backend's helper still alive? (for ps/inspect) */
  healthy?(record: Record<string, unknown>): boolean;
}
