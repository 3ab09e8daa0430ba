// The one registry of network backends (STYLE.md #2). The daemon makes it
// once and passes it in, as it does the port drivers' (src/ports/registry.ts).
// A new backend is one folder under src/net plus its lines here (the table,
// and NAMING when it has named networks).
import { BurrowError } from "../errors.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import type { AnyNetworkBackend, NetworkBackend, NetworkDeps, NetworkNaming, NetworksCapability } from "./backend.ts";
import { cniBackendWith, cniNaming } from "./cni/named.ts";
import { containerBackend } from "./container/backend.ts";
import { hostBackend } from "./host/backend.ts";
import type { NetworkMode, NetworkModeKind, NetworkModeOf } from "./mode.ts";
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
}

// Which named networks a mode or a row names, by backend: pure, so that
// inspect and the daemon's bookkeeping ask it without the backends.
const NAMING: { [K in NetworkModeKind]?: NetworkNaming<K> } = { cni: cniNaming };

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
  const table: BackendTable = {
    none: noneBackend,
    host: hostBackend,
    ns: nsPathBackend,
    container: containerBackend,
    slirp4netns: slirp4netnsBackend,
    pasta: pastaBackend,
    cni,
  };
  const forKind = (kind: string): AnyNetworkBackend => {
    const b = Object.hasOwn(table, kind) ? table[kind as NetworkModeKind] : undefined;
    if (!b) throw new BurrowError(`network mode ${quote(kind)} is not available in this build`, { kind: "unsupported" });
    // The one place a backend's own mode and record types are erased: the
    // table above checked that each key holds the backend of that kind.
    return b as AnyNetworkBackend;
  };
  // Today one backend serves named networks; its mode and record types are erased as forKind's are.
  return { forMode: (mode) => forKind(mode.kind), forKind, networks: cni.networks as NetworksCapability<NetworkModeKind, any> };
}
