// One registry for network backends (STYLE.md #2).
import { BurrowError } from "../errors.ts";
import type { NetworkBackend } from "./backend.ts";
import type { NetworkMode } from "./mode.ts";
import { hostBackend, noneBackend, nsPathBackend } from "./none.ts";

const backends: Partial<Record<NetworkMode["kind"], NetworkBackend>> = {
  none: noneBackend,
  host: hostBackend,
  ns: nsPathBackend,
};

export function registerBackend(kind: NetworkMode["kind"], backend: NetworkBackend): void {
  backends[kind] = backend;
}

export function backendFor(mode: NetworkMode): NetworkBackend {
  const b = backends[mode.kind];
  if (!b) throw new BurrowError(`network mode "${mode.kind}" is not available in this build`, { kind: "unsupported" });
  return b;
}
