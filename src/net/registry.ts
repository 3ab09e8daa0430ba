// The one registry of network backends (STYLE.md #2). The daemon makes it
// once and passes it in, as it does the port drivers' (src/ports/registry.ts).
// A new backend is one folder under src/net plus one line here.
import { BurrowError } from "../errors.ts";
import type { AnyNetworkBackend, NetworkBackend } from "./backend.ts";
import type { CniNetworking } from "./cni/backend.ts";
import { cniBackend } from "./cni/backend.ts";
import { containerBackend } from "./container/backend.ts";
import { hostBackend } from "./host/backend.ts";
import type { NetworkMode, NetworkModeKind } from "./mode.ts";
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
}

export function createNetworkBackends(deps: { cni: CniNetworking }): NetworkBackends {
  const table: BackendTable = {
    none: noneBackend,
    host: hostBackend,
    ns: nsPathBackend,
    container: containerBackend,
    slirp4netns: slirp4netnsBackend,
    pasta: pastaBackend,
    cni: cniBackend(deps.cni),
  };
  const forKind = (kind: string): AnyNetworkBackend => {
    const b = Object.hasOwn(table, kind) ? table[kind as NetworkModeKind] : undefined;
    if (!b) throw new BurrowError(`network mode ${quote(kind)} is not available in this build`, { kind: "unsupported" });
    // The one place a backend's own mode and record types are erased: the
    // table above checked that each key holds the backend of that kind.
    return b as AnyNetworkBackend;
  };
  return { forMode: (mode) => forKind(mode.kind), forKind };
}
