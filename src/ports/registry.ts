// The one registry of port drivers (STYLE.md #2). Which driver serves a
// sandbox's -p is the network backend's call (NetworkBackend.ports); this
// module validates -p up front and routes each sandbox to its driver.
// A new driver is one folder under src/ports plus one line here.
import { BurrowError } from "../errors.ts";
import type { PortChoice } from "../net/backend.ts";
import type { PortRecord, Sandbox } from "../state/sandboxes.ts";
import { builtinDriver } from "./builtin/driver.ts";
import { isPortDriverName, type PortDriver, type PortDriverName } from "./driver.ts";
import { pastaPortDriver } from "./pasta/driver.ts";
import { portmapDriver } from "./portmap/driver.ts";
import { slirp4netnsPortDriver } from "./slirp4netns/driver.ts";
import { parsePortSpecs } from "./spec.ts";

export interface PortDrivers {
  /** Validates -p values before anything is created: refused, unparsable or beyond the driver. */
  parse(raw: string[], choice: PortChoice): PortRecord[];
  /** Before the network exists: picks host ports where the driver cannot (pasta). */
  prepare(driver: PortDriverName, specs: PortRecord[]): Promise<PortRecord[]>;
  /** Publishes through the driver recorded in s.runtime.portDriver. */
  setup(s: Sandbox, specs: PortRecord[]): Promise<PortRecord[]>;
  teardown(s: Sandbox): Promise<Error[]>;
  restore(s: Sandbox): Promise<void>;
}

export function createPortDrivers(): PortDrivers {
  const drivers: Record<PortDriverName, PortDriver> = {
    builtin: builtinDriver(),
    slirp4netns: slirp4netnsPortDriver(),
    portmap: portmapDriver(),
    pasta: pastaPortDriver(),
  };
  const forSandbox = (s: Sandbox) => drivers[isPortDriverName(s.runtime.portDriver) ? s.runtime.portDriver : "builtin"];
  return {
    parse(raw, choice) {
      if (!raw.length) return [];
      if ("refuse" in choice) throw new BurrowError(choice.refuse, { kind: "bad-input" });
      const specs = parsePortSpecs(raw);
      drivers[choice.driver].check?.(specs);
      return specs;
    },
    async prepare(driver, specs) {
      const d = drivers[driver];
      return d.prepare ? d.prepare(specs) : specs;
    },
    async setup(s, specs) {
      const d = forSandbox(s);
      const out = await d.setup(s, specs);
      return d.sourceAddress ? out.map((p) => ({ ...p, ...d.sourceAddress!(p) })) : out;
    },
    teardown: (s) => forSandbox(s).teardown(s),
    async restore(s) {
      await forSandbox(s).restore?.(s);
    },
  };
}
