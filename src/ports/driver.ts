// The port driver interface (STYLE.md #2): one folder per driver, chosen by
// src/ports/registry.ts. Runs on the daemon's main thread.
import type { PortRecord, Sandbox } from "../state/sandboxes.ts";

export interface PortDriver {
  /** Refuses mappings the driver cannot serve, before anything is created. */
  check?(specs: PortRecord[]): void;
  /** Before the network is set up: fix host ports the driver cannot choose itself. */
  prepare?(specs: PortRecord[]): Promise<PortRecord[]>;
  /**
   * Ports this driver leaves to the builtin forwarder (portmap: those on
   * [::1], which no DNAT serves). The registry publishes them through its one
   * builtin driver, marked `forwarded`, as ports `port add` gave it; this
   * driver never sees them.
   */
  forwards?(p: PortRecord): boolean;
  /** Publishes the ports; returns them with actual host ports. Rolls back its own partial work. */
  setup(s: Sandbox, specs: PortRecord[]): Promise<PortRecord[]>;
  /** Unpublishes; every error is returned, none stops the rest. */
  teardown(s: Sandbox): Promise<Error[]>;
  /**
   * `burrow port add` on a running sandbox: publishes more ports beside the
   * ones it has (host port 0 = a free one); returns them with actual host
   * ports. All or nothing: rolls back its own partial work.
   */
  add?(s: Sandbox, specs: PortRecord[]): Promise<PortRecord[]>;
  /** `burrow port rm`: unpublishes these (as recorded) and leaves the others; every error is returned. */
  remove?(s: Sandbox, ports: PortRecord[]): Promise<Error[]>;
  /** Why this driver cannot add or remove ports of this running sandbox now, or undefined. */
  liveRefusal?(s: Sandbox): string | undefined;
  /**
   * The address the sandbox sees for a published port's clients (not on
   * loopback), for drivers where it is fixed by how they forward; the
   * builtin forwarder records it per port at setup instead.
   */
  sourceAddress?(p: PortRecord): Pick<PortRecord, "sourceAddress" | "sourceAddressWhy">;
  /**
   * --accelerate: the host listening socket of the one TCP port of `s` this
   * driver forwards to container port `containerPort`, lent to a server in
   * the sandbox (docs/accelerate.md "Inbound"); null when there is no such
   * single port of that address family (4 or 6).
   */
  lend?(s: Sandbox, containerPort: number, family: 4 | 6): Promise<LentPort | null>;
  /** After restore: the ports whose host socket a server of accelerated sandbox `s` held (taken back, paused), once. */
  heldAtRestore?(s: Sandbox): HeldPort[];
  /** After a daemon restart: publish the recorded ports again if they need this process. */
  restore?(s: Sandbox): Promise<void>;
}

/** A published port's host listening socket, lent: `fd` is a duplicate, the borrower's to close; `resume` gives the port back to the forwarder. */
export interface LentPort {
  fd: number;
  hostPort: number;
  resume(): void;
}

/** A lent port found held by a sandboxed server when the daemon restarted: the forwarder serves it after `resume`. */
export interface HeldPort {
  inode: number;
  hostPort: number;
  resume(): void;
}

// The names live beside net/ and ports/ (src/port-driver-names.ts): both use them.
export { isPortDriverName, PORT_DRIVER_NAMES, type PortDriverName } from "../port-driver-names.ts";
