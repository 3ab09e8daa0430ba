// The daemon's sandbox lifecycle, as the request handlers see it: a thin
// façade over create (src/daemon/create.ts), release (release.ts) and
// recovery (recovery.ts), which share one DaemonContext. Daemon main
// thread, session namespaces.
import { Accelerator } from "../accelerate/supervisor.ts";
import type { CreateRequest, EnterTarget } from "../protocol.ts";
import type { NetworkBackends } from "../net/registry.ts";
import { hiddenFromSandboxes, sandboxLog, type Paths } from "../paths.ts";
import { endSpare, prewarm } from "../namespaces/pins.ts";
import { KeyedMutex } from "../mutex.ts";
import type { PortDrivers } from "../ports/registry.ts";
import type { Sandbox, SandboxStore } from "../state/sandboxes.ts";
import { enterTarget, setupContext, type CreateBookkeeping, type DaemonContext, type SessionInfo } from "./context.ts";
import { abandoned, findOrNull, replayCreate, retryDeps } from "./create-retry.ts";
import { createSandbox, markStarted, removeLeftoverSpares, spareAhead, spawnDetached, type Created } from "./create.ts";
import { addPorts, removePorts, type PortChangeReply } from "./live-ports.ts";
import { processesOf, SandboxRecovery } from "./recovery.ts";
import { SandboxReleases } from "./release.ts";
import { RestartSupervisor } from "./restart.ts";
import { createEgressService, type EgressService } from "../egress/service.ts";
import { recordRefusal } from "./egress.ts";

export type { SessionInfo };

export class SandboxService {
  /** Busy counter for idle detection. */
  inflight = 0;
  private readonly ctx: DaemonContext;
  private readonly releases: SandboxReleases;
  private readonly recovery: SandboxRecovery;
  /** Restart policies, start, restart and wait (src/daemon/restart.ts). */
  readonly restarts: RestartSupervisor;

  constructor(deps: {
    paths: Paths;
    store: SandboxStore;
    session: SessionInfo;
    bootId: string;
    ports: PortDrivers;
    backends: NetworkBackends;
    bookkeeping: CreateBookkeeping;
  }) {
    // The supervisor's host calls back into create and release, which
    // themselves call the supervisor at their restart hooks (ctx.restarts).
    this.restarts = new RestartSupervisor({
      store: deps.store,
      ports: deps.ports,
      backends: deps.backends,
      withLock: (id, fn) => this.withLock(id, fn),
      spawnDetached: (s) => spawnDetached(this.ctx, this.releases, s),
      exited: (id, exitCode) => this.releases.exited(id, exitCode),
      recreate: (s, req) => createSandbox(this.ctx, this.releases, req, s),
      setupContext: (s) => setupContext(this.ctx, s),
      health: (s) => this.health(s),
      isExiting: (id) => this.releases.isExiting(id),
    });
    this.ctx = {
      ...deps,
      locks: new KeyedMutex<string>(),
      children: new Map(),
      creating: new Set(),
      restarts: this.restarts,
      accelerator: new Accelerator(`${deps.paths.runtimeDir}/accelerate.sock`, process.getuid?.() ?? 0, deps.bookkeeping.helpers),
      // Refusals (the ruleset's NFLOG, the resolver) become events on their sandbox (docs/egress.md "Events and visibility").
      egress: createEgressService({
        onRefusal: (id, event) => recordRefusal(this.ctx, id, event),
        // --accelerate's supervisor lets connects to learned addresses out through host sockets.
        onLearned: (id, allowIndex, address, expiresAt) => this.ctx.accelerator.egressLearned(id, allowIndex, address, expiresAt),
      }),
    };
    // Connects --accelerate's supervisor refused: folded into events with the ruleset's and the resolver's (one policy, one path).
    this.ctx.accelerator.setRefusalHook((id, refusal) => this.ctx.egress.report(id, refusal));
    // A server in an accelerated sandbox binding a published port gets the forwarder's host socket (docs/accelerate.md "Inbound").
    this.ctx.accelerator.setLender({
      lend: async (id, port, family) => {
        const s = findOrNull(this.ctx.store, id);
        return s && s.status === "running" ? this.ctx.ports.lend(s, port, family) : null;
      },
      processes: (id) => {
        const s = findOrNull(this.ctx.store, id);
        return s ? processesOf(s) : [];
      },
    });
    this.releases = new SandboxReleases(this.ctx);
    this.recovery = new SandboxRecovery(this.ctx, this.releases);
  }

  /**
   * Starts the spare namespace worker (src/namespaces/pins.ts) with what it
   * makes ready for the next plain sandbox; first the files of spares an
   * earlier daemon left.
   */
  prepareSpare(): void {
    removeLeftoverSpares(this.ctx);
    prewarm(hiddenFromSandboxes(this.ctx.paths), () => spareAhead(this.ctx));
  }

  /** The daemon is ending: no spare any more, and its files' directory goes. */
  dropSpare(): void {
    endSpare();
    removeLeftoverSpares(this.ctx);
  }

  get paths(): Paths {
    return this.ctx.paths;
  }
  get store(): SandboxStore {
    return this.ctx.store;
  }
  get session(): SessionInfo {
    return this.ctx.session;
  }
  get ports(): PortDrivers {
    return this.ctx.ports;
  }
  get backends(): NetworkBackends {
    return this.ctx.backends;
  }
  get accelerator(): Accelerator {
    return this.ctx.accelerator;
  }
  get egress(): EgressService {
    return this.ctx.egress;
  }

  /**
   * Runs `fn` when no other state change of sandbox `id` is under way. Never
   * call it from inside `fn` for the same id (it would wait for itself).
   */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.ctx.locks.run(id, fn);
  }

  /** A retry (same request id) gets the first attempt's answer (src/daemon/requests-seen.ts). */
  create(req: CreateRequest): Promise<Created | { id: string; name: string }> {
    return this.ctx.bookkeeping.requests.once(
      req.requestId,
      () => createSandbox(this.ctx, this.releases, req),
      (seen) => replayCreate(retryDeps(this.ctx, this.releases), seen, req),
    );
  }

  /** The CLI started the command of a foreground sandbox. */
  started(id: string, pid: number): void {
    const s = this.ctx.store.find(id);
    if (s.status !== "created") return;
    markStarted(this.ctx, s, pid);
  }

  enterTarget(s: Sandbox): EnterTarget & { cwd: string } {
    return enterTarget(this.ctx, s);
  }

  /**
   * The command of a sandbox exited. `pid`: the CLI's exit report of a
   * foreground run, sent while its started report may still be on its way:
   * a sandbox not marked started yet is marked first, so that its events
   * stay start, died and its row has the pid.
   */
  exited(id: string, exitCode: number | null, opts: { wait?: boolean; pid?: number } = {}): Promise<void> {
    if (opts.pid !== undefined && this.ctx.store.has(id)) this.started(id, opts.pid);
    return this.releases.exited(id, exitCode, opts);
  }
  settled(id?: string): Promise<void> {
    return this.releases.settled(id);
  }
  /** How many sandboxes are being released. */
  releasing(): number {
    return this.releases.count();
  }
  /** True while the sandbox's exit is being recorded or its network released. */
  isExiting(id: string): boolean {
    return this.releases.isExiting(id);
  }
  stop(ref: string, timeoutSec: number): Promise<Sandbox> {
    return this.releases.stop(ref, timeoutSec);
  }
  rm(ref: string, force: boolean, depend = false): Promise<{ id: string; name: string; removed: Array<{ id: string; name: string }> }> {
    return this.releases.rm(ref, force, depend);
  }

  /** `burrow port add`: more ports on a running sandbox (src/daemon/live-ports.ts). */
  portAdd(ref: string, ports: string[]): Promise<PortChangeReply> {
    return addPorts(this.ctx, (id) => this.releases.isExiting(id), ref, ports);
  }
  /** `burrow port rm`. */
  portRm(ref: string, ports: string[]): Promise<PortChangeReply> {
    return removePorts(this.ctx, (id) => this.releases.isExiting(id), ref, ports);
  }

  reap(): Promise<void> {
    return this.recovery.reap();
  }
  reconcile(): Promise<void> {
    return this.recovery.reconcile();
  }
  sessionLost(): Promise<void> {
    return this.recovery.sessionLost();
  }

  list(all: boolean): Sandbox[] {
    // Not a half-made create being rolled back (src/daemon/create-retry.ts).
    return this.ctx.store.all().filter((s) => !abandoned(this.ctx, s) && (all || s.status === "running" || s.status === "created"));
  }

  logPath(ref: string): string {
    const s = this.ctx.store.find(ref);
    return sandboxLog(this.ctx.paths, s);
  }

  /** Sandboxes not exited (idle detection). */
  active(): number {
    return this.ctx.store.all().filter((s) => s.status !== "exited").length;
  }

  processes(s: Sandbox): number[] {
    return processesOf(s);
  }

  /** "slirp4netns exited" when the network's helper died under a running sandbox. */
  health(s: Sandbox): string | null {
    if (s.status !== "running" || !s.runtime.backend) return null;
    try {
      const b = this.ctx.backends.forKind(s.runtime.network);
      if (b.healthy && !b.healthy(s.runtime.backend)) return `${b.kind} exited`;
    } catch {
      // A row from a build with a backend this one lacks: nothing to ask.
    }
    return null;
  }

  /** inspect's per-network entries, for backends that have them (bridge networks). */
  inspectNetworks(s: Sandbox): Record<string, object> | undefined {
    const b = this.ctx.backends.forKind(s.runtime.network);
    return b.inspectNetworks?.(s.runtime.backend);
  }
}
