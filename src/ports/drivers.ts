// Port publishing for the daemon: picks the port driver for a sandbox's
// network mode and keeps the live handles (STYLE.md #2).
import { BurrowError } from "../errors.ts";
import type { NetworkMode } from "../net/mode.ts";
import type { PortRecord, Sandbox } from "../state/sandboxes.ts";

export interface PortDriverSet {
  /** Validates -p values before anything is created. */
  parse(raw: string[], mode: NetworkMode): PortRecord[];
  setup(s: Sandbox, specs: PortRecord[]): Promise<PortRecord[]>;
  teardown(s: Sandbox): Promise<Error[]>;
}

export function createPortDrivers(): PortDriverSet {
  return {
    parse(raw, mode) {
      if (!raw.length) return [];
      throw new BurrowError(`-p is not supported with --network ${mode.kind}`, { kind: "bad-input" });
    },
    async setup() {
      return [];
    },
    async teardown() {
      return [];
    },
  };
}
