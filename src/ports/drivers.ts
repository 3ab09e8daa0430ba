// Port publishing for the daemon: picks the port driver for a sandbox's
// network mode (one registry, STYLE.md #2) and validates -p up front.
import { BurrowError } from "../errors.ts";
import type { NetworkMode } from "../net/mode.ts";
import type { PortRecord, Sandbox } from "../state/sandboxes.ts";
import { parsePortSpecs } from "./spec.ts";
import type { PortDriver } from "./driver.ts";
import { builtinDriver } from "./builtin/driver.ts";
import { slirp4netnsPortDriver } from "./slirp4netns/driver.ts";
import { portmapDriver } from "./portmap/driver.ts";
import { pastaPortDriver } from "./pasta/driver.ts";

export interface PortDriverSet {
  /** Validates -p values before anything is created. */
  parse(raw: string[], mode: NetworkMode): PortRecord[];
  /** Before the network exists: picks host ports where the driver cannot (portmap). */
  prepare(mode: NetworkMode, specs: PortRecord[]): Promise<PortRecord[]>;
  setup(s: Sandbox, specs: PortRecord[]): Promise<PortRecord[]>;
  teardown(s: Sandbox): Promise<Error[]>;
  restore(s: Sandbox): Promise<void>;
}

type DriverName = "builtin" | "slirp4netns" | "portmap" | "pasta";

export function createPortDrivers(rootless: boolean): PortDriverSet {
  const drivers: Record<DriverName, PortDriver> = { builtin: builtinDriver(), slirp4netns: slirp4netnsPortDriver(), portmap: portmapDriver(), pasta: pastaPortDriver() };
  /**
   * slirp4netns:port_handler=slirp4netns picks slirp4netns's own; rootful
   * bridge networks the CNI portmap plugin (podman v3); everything else the
   * builtin forwarder.
   */
  const driverName = (mode: NetworkMode | { kind: string; options?: string }): DriverName => {
    if (mode.kind === "slirp4netns" && "options" in mode && /(^|,)port_handler=slirp4netns(,|$)/.test(mode.options ?? "")) return "slirp4netns";
    if (mode.kind === "cni" && !rootless) return "portmap";
    // pasta binds the host ports itself: they only need choosing up front.
    if (mode.kind === "pasta") return "pasta";
    return "builtin";
  };
  const forSandbox = (s: Sandbox) => drivers[(s.runtime.portDriver as DriverName | undefined) ?? "builtin"];
  return {
    parse(raw, mode) {
      if (!raw.length) return [];
      if (mode.kind === "none" || mode.kind === "host" || mode.kind === "ns")
        throw new BurrowError(
          `-p cannot be used with --network ${mode.kind}: ${mode.kind === "host" ? "the sandbox already uses the host's ports" : "the sandbox has no network burrow can forward to"}`,
          { kind: "bad-input" },
        );
      const specs = parsePortSpecs(raw);
      drivers[driverName(mode)].check?.(specs);
      return specs;
    },
    async prepare(mode, specs) {
      const d = drivers[driverName(mode)];
      return d.prepare ? d.prepare(specs) : specs;
    },
    async setup(s, specs) {
      const name = driverName({ kind: s.runtime.network, options: s.spec.network.split(":").slice(1).join(":") });
      s.runtime.portDriver = name;
      return drivers[name].setup(s, specs);
    },
    teardown: (s) => forSandbox(s).teardown(s),
    async restore(s) {
      await forSandbox(s).restore?.(s);
    },
  };
}
