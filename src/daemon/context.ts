// What every part of the daemon's sandbox lifecycle shares (create, release,
// recovery, the network operations). Daemon main thread, session namespaces.
import type { Accelerator } from "../accelerate/supervisor.ts";
import { accelerationScope } from "../accelerate/scope-of.ts";
import { sandboxDir, type Paths } from "../paths.ts";
import type { EnterTarget } from "../protocol.ts";
import type { SetupContext } from "../net/backend.ts";
import type { NetworkBackends } from "../net/registry.ts";
import type { KeyedMutex } from "../mutex.ts";
import type { PortDrivers } from "../ports/registry.ts";
import { BurrowError } from "../errors.ts";
import type { Sandbox, SandboxStore } from "../state/sandboxes.ts";
import { type HelperLedger, warmOwner } from "../state/helpers.ts";
import type { SpaceReserve } from "../state/full.ts";
import type { RequestsSeen } from "./requests-seen.ts";
import type { EgressService } from "../egress/service.ts";
import { acceleratorEgress } from "./egress.ts";
import { privateMountsPrefix } from "../sandbox/enter-spawn.ts";

/** Creates safe to retry (issue 10 item 2): src/daemon/create-retry.ts. */
export interface CreateBookkeeping {
  helpers: HelperLedger;
  requests: RequestsSeen;
  /** Room for rollbacks on a full disk (src/state/full.ts). */
  reserve?: SpaceReserve;
}

export interface SessionInfo {
  /** Identity of the namespaces pins live in ("host" for rootful). */
  id: string;
  enter: EnterTarget["session"];
}

/**
 * Where create, release and recovery call into restart-policy supervision
 * (src/daemon/restart.ts, search for "restart hook").
 */
export interface RestartHooks {
  /** Under the sandbox's lock, on an exit: true when the policy takes it over (nothing is released). */
  onExit(s: Sandbox, exitCode: number | null): Promise<boolean>;
  /** Before `stop` or `rm -f` signals the sandbox: it is never restarted. */
  userStop(s: Sandbox): Promise<void>;
  /** A back-off timer or its respawn owns the sandbox's next step (reap leaves it alone). */
  holds(id: string): boolean;
  /** The session is gone: nothing is restarted any more. */
  close(): void;
}

export interface DaemonContext {
  readonly paths: Paths;
  readonly store: SandboxStore;
  readonly session: SessionInfo;
  readonly bootId: string;
  readonly ports: PortDrivers;
  readonly backends: NetworkBackends;
  /** Per-sandbox lock: create, exit/release, remove, connect/disconnect/reload take turns. */
  readonly locks: KeyedMutex<string>;
  /** Detached sandboxes whose main process the daemon itself waits for. */
  readonly children: Map<string, Bun.Subprocess>;
  /** Sandboxes whose create is under way: their row exists before their pins. */
  readonly creating: Set<string>;
  readonly bookkeeping: CreateBookkeeping;
  readonly restarts: RestartHooks;
  /** --accelerate's supervisor (src/accelerate/supervisor.ts): started with the first accelerated sandbox. */
  readonly accelerator: Accelerator;
  /** Egress policy's resolver and refusal log (src/egress/service.ts); src/daemon/egress.ts attaches sandboxes to it. */
  readonly egress: EgressService;
  /** --accelerate's refused connects, folded into events like the ruleset's (src/daemon/egress.ts). */
}

export function now(): string {
  return new Date().toISOString();
}

/** SetupContext.privateMounts, when the daemon has its enter helper in memory. */
function withPrivateMounts(): Pick<SetupContext, "privateMounts"> {
  const prefix = privateMountsPrefix();
  return prefix ? { privateMounts: prefix } : {};
}

/** What a network backend gets for one sandbox. */
export function setupContext(ctx: DaemonContext, s: Sandbox): SetupContext {
  return {
    paths: ctx.paths,
    sandbox: s,
    netns: s.runtime.pins?.net ?? "",
    dir: sandboxDir(ctx.paths, s.id),
    // Helpers are written down before they are spawned (src/state/helpers.ts).
    helpers: {
      intend: (kind) => ctx.bookkeeping.helpers.intend(kind, `sandbox:${s.id}`),
      intendWarm: (kind) => ctx.bookkeeping.helpers.intend(kind, warmOwner(kind)),
      adopt: (track) => track.reassign(`sandbox:${s.id}`),
    },
    ...withPrivateMounts(),
  };
}

/** How `exec` and a detached start join the sandbox. */
export function enterTarget(ctx: DaemonContext, s: Sandbox): EnterTarget & { cwd: string } {
  if (!s.runtime.pins) throw new BurrowError(`sandbox ${s.name} is not running`, { kind: "not-running" });
  const target: EnterTarget & { cwd: string } = { session: ctx.session.enter, ...s.runtime.pins, cwd: s.spec.cwd, ...confinement(s) };
  // Every process entering an accelerated sandbox (run, exec, a restart) carries the filter, with a listener of its own.
  if (s.spec.accelerate && s.runtime.ino) target.accelerate = ctx.accelerator.expect(s.id, accelerationScope(s, s.runtime.ino.net), acceleratorEgress(s));
  if (!ctx.backends.forKind(s.runtime.network).entersNetns) return { ...target, net: undefined };
  return target;
}

/**
 * What the command is allowed: its capability set, and a Landlock domain of
 * its own unless it has CAP_SYS_ADMIN (--privileged, or --cap-add): Landlock
 * forbids every mount to a process in a domain, and podman's users add
 * SYS_ADMIN to mount. With it the command may reach sandboxes with no more
 * capabilities than its own (docs/threat-model.md). A row of 0.2.0 has no
 * set: its command keeps what it had.
 */
function confinement(s: Sandbox): Pick<EnterTarget, "caps" | "confine"> {
  if (!s.spec.caps) return {};
  return { caps: s.spec.caps as EnterTarget["caps"], confine: !s.spec.caps.includes("CAP_SYS_ADMIN") };
}

/** "name (id12)" for log lines about one sandbox. */
export function sandboxLabel(s: Pick<Sandbox, "id" | "name">): string {
  return `${s.name} (${s.id.slice(0, 12)})`;
}
