// The one registry of port drivers (STYLE.md #2). Which driver serves a
// sandbox's -p is the network backend's call (NetworkBackend.ports); this
// module validates -p up front and routes each sandbox to its driver.
// A new driver is one folder under src/ports plus one line here.
import { BurrowError } from "../errors.ts";
import type { PortChoice } from "../net/backend.ts";
import type { PortRecord, Sandbox } from "../state/sandboxes.ts";
import { builtinDriver } from "./builtin/driver.ts";
import { isPortDriverName, type HeldPort, type LentPort, type PortDriver, type PortDriverName } from "./driver.ts";
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
  /** --accelerate: the builtin forwarder's host socket for the sandbox's one TCP port to `containerPort`, lent (PortDriver.lend). */
  lend(s: Sandbox, containerPort: number, family: 4 | 6): Promise<LentPort | null>;
  /** After restore: the builtin forwarder's ports a server of `s` held (PortDriver.heldAtRestore). */
  heldAtRestore(s: Sandbox): HeldPort[];
  restore(s: Sandbox): Promise<void>;
  /**
   * `burrow port add` on a running sandbox whose s.runtime.portDriver is
   * set: publishes specs beside its ports, all or nothing. A driver that
   * cannot change a live attachment (portmap) has them published by the
   * builtin forwarder, marked `forwarded`; one that cannot at all (pasta)
   * refuses in one line.
   */
  add(s: Sandbox, specs: PortRecord[]): Promise<PortRecord[]>;
  /** Why `burrow port rm` cannot remove this recorded port, or undefined. */
  refuseRemoval(s: Sandbox, port: PortRecord): string | undefined;
  /** `burrow port rm`: unpublishes these recorded ports; every error is returned. */
  remove(s: Sandbox, ports: PortRecord[]): Promise<Error[]>;
}

/** The sandbox as seen by one driver: only the ports it published. */
function withPorts(s: Sandbox, ports: PortRecord[]): Sandbox {
  return { ...s, runtime: { ...s.runtime, ports } };
}

/**
 * Which of `ports` are the driver's own, and which the builtin forwarder
 * publishes for it: the ports `port add` gave it (`forwarded`) and those the
 * driver leaves to it (PortDriver.forwards; also in records made before they
 * were marked). Each keeps its order.
 */
function splitByPublisher(d: PortDriver, ports: PortRecord[]): { own: PortRecord[]; forwarded: PortRecord[] } {
  return { own: ports.filter((p) => !isForwarded(d, p)), forwarded: ports.filter((p) => isForwarded(d, p)) };
}

/** The sandbox as its own driver sees it, and as the builtin forwarder does (splitByPublisher). */
function byPublisher(d: PortDriver, s: Sandbox): { own: Sandbox; forwarded: Sandbox } {
  const { own, forwarded } = splitByPublisher(d, s.runtime.ports ?? []);
  return { own: withPorts(s, own), forwarded: withPorts(s, forwarded) };
}

function isForwarded(d: PortDriver, p: PortRecord): boolean {
  return !!p.forwarded || !!d.forwards?.(p);
}

/** The driver's fixed client address on each port, where it has one (PortDriver.sourceAddress). */
function withSourceAddress(d: PortDriver, ports: PortRecord[]): PortRecord[] {
  return d.sourceAddress ? ports.map((p) => ({ ...p, ...d.sourceAddress!(p) })) : ports;
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
      const split = splitByPublisher(d, specs);
      if (d === drivers.builtin || !split.forwarded.length) return withSourceAddress(d, await d.setup(s, specs));
      // Some go through the builtin forwarder (PortDriver.forwards, or `port add`'s, published again): the same
      // order back, all or nothing.
      const fw = await drivers.builtin.setup(s, split.forwarded);
      let own: PortRecord[];
      try {
        own = withSourceAddress(d, await d.setup(s, split.own));
      } catch (e) {
        await drivers.builtin.teardown(withPorts(s, fw));
        throw e;
      }
      const [nextOwn, nextFw] = [own.values(), fw.values()];
      return specs.map((p) => (isForwarded(d, p) ? { ...nextFw.next().value!, forwarded: true } : nextOwn.next().value!));
    },
    async teardown(s) {
      const d = forSandbox(s);
      if (d === drivers.builtin) return d.teardown(s);
      const { own, forwarded } = byPublisher(d, s);
      const errors = await d.teardown(own);
      // The ports `port add` gave the forwarder (nothing when there are none).
      errors.push(...(await drivers.builtin.teardown(forwarded)));
      return errors;
    },
    heldAtRestore: (s) => drivers.builtin.heldAtRestore?.(s) ?? [],
    async lend(s, containerPort, family) {
      // Only the builtin forwarder's own sockets: portmap/netavark rules and the helpers' ports keep their path.
      const d = forSandbox(s);
      if (d !== drivers.builtin && (s.runtime.ports ?? []).some((p) => !isForwarded(d, p) && p.protocol === "tcp" && p.containerPort === containerPort))
        return null;
      return drivers.builtin.lend!(s, containerPort, family);
    },
    async restore(s) {
      const d = forSandbox(s);
      if (d === drivers.builtin) return d.restore?.(s);
      const { own, forwarded } = byPublisher(d, s);
      await d.restore?.(own);
      await drivers.builtin.restore?.(forwarded); // nothing when `port add` gave it none
    },
    async add(s, specs) {
      const d = forSandbox(s);
      const why = d.liveRefusal?.(s);
      if (why) throw new BurrowError(why, { kind: "unsupported-option" });
      if (d.add) {
        return withSourceAddress(d, await d.add(s, specs));
      }
      const added = await drivers.builtin.add!(s, specs);
      return added.map((p) => ({ ...p, forwarded: true }));
    },
    refuseRemoval(s, port) {
      const d = forSandbox(s);
      if (isForwarded(d, port)) return undefined;
      const why = d.liveRefusal?.(s);
      if (why || d.remove) return why;
      return `host port ${port.hostPort}/${port.protocol} was published when ${s.name} started, by ${s.runtime.portDriver} rules burrow cannot change while the sandbox runs; only ports added with \`burrow port add\` can be removed from a running rootful bridge sandbox`;
    },
    async remove(s, ports) {
      const d = forSandbox(s);
      const { own, forwarded } = splitByPublisher(d, ports);
      const errors = forwarded.length ? await drivers.builtin.remove!(s, forwarded) : [];
      if (own.length && d.remove) errors.push(...(await d.remove(s, own)));
      return errors;
    },
  };
}
