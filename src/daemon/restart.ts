// Supervision of restart policies, and the start / restart / wait
// operations. The sandbox service calls in at a few marked hook points
// (search for "restart hook" in create.ts, release.ts and recovery.ts,
// which reach it as DaemonContext.restarts); everything else lives here:
//
// - an exit that the policy restarts keeps the namespaces (pins), network,
//   addresses, MAC, published ports and aliases; the command is spawned
//   again in the same sandbox after a back-off (src/sandbox/restart-policy.ts);
// - before a respawn, a dead slirp4netns or pasta is started again on the
//   same netns with the same options and ports;
// - `stop` and `rm -f` end supervision first, so their exit is released
//   as any other;
// - `start` of an exited sandbox whose namespaces are gone (stop, reboot)
//   re-creates namespaces, network and ports from the recorded spec, as
//   podman start does for a stopped container.
//
// What survives a daemon restart is in the row (runtime.restart, status
// "running"): the next daemon's reap sees the command gone and comes back
// through onExit, so `always` sandboxes whose pins still hold come back.
import { BurrowError, messageOf } from "../errors.ts";
import { log } from "../log.ts";
import type { CreateRequest } from "../protocol.ts";
import type { SetupContext } from "../net/backend.ts";
import { modeOfRow } from "../net/registry.ts";
import type { NetworkBackends } from "../net/registry.ts";
import type { PortDrivers } from "../ports/registry.ts";
import { pinHolds } from "../namespaces/pins.ts";
import { isRunning, killAll, startTimeOf, terminate } from "../sys/processes.ts";
import type { RestartHooks } from "./context.ts";
import {
  NO_RESTART,
  formatRestartPolicy,
  nextBackoff,
  parseRestartPolicy,
  restartStateOf,
  shouldRestart,
  type RestartPolicy,
  type RestartState,
} from "../sandbox/restart-policy.ts";
import type { Sandbox, SandboxStore } from "../state/sandboxes.ts";

/** What supervision needs from the sandbox service (src/daemon/service.ts wires it to create and release). */
export interface SupervisorHost {
  store: SandboxStore;
  ports: PortDrivers;
  backends: NetworkBackends;
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
  /** Starts the sandbox's command detached in its (pinned) namespaces and marks it running. */
  spawnDetached(s: Sandbox): void;
  /** Reports the command's exit (releases everything unless onExit holds it). */
  exited(id: string, exitCode: number | null): Promise<void>;
  /** Re-runs a create for an existing, exited row (new namespaces, network and ports). */
  recreate(s: Sandbox, req: CreateRequest): Promise<unknown>;
  setupContext(s: Sandbox): SetupContext;
  health(s: Sandbox): string | null;
  isExiting(id: string): boolean;
}

export function policyOf(s: Sandbox): RestartPolicy {
  try {
    return parseRestartPolicy(s.spec.restart);
  } catch {
    return NO_RESTART;
  }
}

function pinsHold(s: Sandbox): boolean {
  return !!s.runtime.pins && !!s.runtime.ino && pinHolds(s.runtime.pins.mnt, s.runtime.ino.mnt);
}

export class RestartSupervisor implements RestartHooks {
  private timers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Timers that fired and whose respawn waits for its turn. */
  private respawning = new Set<string>();
  /** `stop` / `rm -f` under way: their exit is released, never restarted. */
  private stopping = new Set<string>();
  /** The user's `restart`: respawn at once, not counted. */
  private forced = new Set<string>();
  /**
   * A user `restart` still signalling the old processes: the respawn waits
   * for it, or the new process would join the mount namespace that
   * terminate() is emptying and be killed with the old ones.
   */
  private gates = new Map<string, Promise<void>>();
  /** Supervision gave up (namespaces gone, respawn failed): release the next exit. */
  private givingUp = new Set<string>();
  /** Starts under way, so two at once do not both re-create one sandbox. */
  private starting = new Map<string, Promise<Sandbox>>();
  private closed = false;

  constructor(private host: SupervisorHost) {}

  /** True while this daemon owns the sandbox's next step (a back-off timer or its respawn). */
  holds(id: string): boolean {
    return this.timers.has(id) || this.respawning.has(id);
  }

  /**
   * Restart hook of the exit path, under the sandbox's lock: true when the
   * exit is taken over (nothing is released, the command comes back), false
   * to let the exit release the sandbox as before.
   */
  async onExit(s: Sandbox, exitCode: number | null): Promise<boolean> {
    const id = s.id;
    if (this.stopping.delete(id) || this.givingUp.delete(id) || this.closed) {
      this.clear(id);
      if (s.runtime.restart?.pending) s.runtime.restart.pending = false;
      return false;
    }
    // A second report about a run already handled: reap's snapshot from
    // before a respawn, or the waiter and reap both seeing one exit. The
    // current run is alive, or its restart is already scheduled.
    if (this.holds(id) && s.runtime.restart?.pending) return true;
    if (s.pid && s.pidStart && pinsHold(s) && isRunning(s.pid) && startTimeOf(s.pid) === s.pidStart) {
      log.debug(`${s.name}: exit report for an earlier run ignored (pid ${s.pid} runs)`);
      return true;
    }
    const st: RestartState = restartStateOf(s.runtime.restart);
    const forced = this.forced.has(id);
    if (!forced && !shouldRestart(policyOf(s), { exitCode, restartCount: st.count, stoppedByUser: false })) {
      if (s.spec.restart) log.debug(`${s.name} exited (${exitCode ?? "?"}): not restarted (policy ${formatRestartPolicy(policyOf(s))}, ${st.count} restarts)`);
      st.pending = false;
      s.runtime.restart = st;
      return false;
    }
    if (!pinsHold(s)) return false;
    // Like a container's restart: whatever else ran in the sandbox (exec
    // sessions, children of the command) ends with it.
    await killAll(s.runtime.ino!.mnt, s.runtime.pins!.mnt);
    const uptime = s.startedAt ? Date.now() - Date.parse(s.startedAt) : 0;
    const delay = forced ? 0 : nextBackoff(st.delayMs ?? 0, uptime);
    if (!forced) st.delayMs = delay;
    st.pending = true;
    s.runtime.restart = st;
    s.exitCode = exitCode ?? s.exitCode;
    s.finishedAt = new Date().toISOString();
    s.pid = null;
    s.pidStart = null;
    this.host.store.update(s);
    this.host.store.event("died", s, { exitCode, restarting: true });
    log.debug(`${s.name} exited (${exitCode ?? "?"}): restart ${forced ? "now (user)" : `in ${delay} ms (policy ${formatRestartPolicy(policyOf(s))})`}`);
    this.schedule(id, delay);
    return true;
  }

  private schedule(id: string, delayMs: number): void {
    this.clear(id);
    this.timers.set(
      id,
      setTimeout(() => {
        this.timers.delete(id);
        this.respawning.add(id);
        this.respawn(id)
          .catch((e) => log.warn(`restart of ${id.slice(0, 12)}: ${messageOf(e)}`))
          .finally(() => this.respawning.delete(id));
      }, delayMs),
    );
  }

  private clear(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  private async respawn(id: string): Promise<void> {
    await this.gates.get(id);
    let exitCode: number | null = null;
    const outcome = await this.host.withLock(id, async (): Promise<"ok" | "skip" | "release"> => {
      let s: Sandbox;
      try {
        s = this.host.store.find(id);
      } catch {
        return "skip"; // removed meanwhile
      }
      exitCode = s.exitCode;
      if (s.status === "exited" || !s.runtime.restart?.pending || this.stopping.has(id) || this.closed) return "skip";
      if (!pinsHold(s)) {
        log.debug(`${s.name}: not restarted, its namespaces are gone`);
        return "release";
      }
      const forced = this.forced.delete(id);
      try {
        await this.healNetwork(s);
        const st = restartStateOf(s.runtime.restart);
        s.runtime.restart = { ...st, pending: false, count: st.count + (forced ? 0 : 1) };
        this.host.spawnDetached(s);
      } catch (e) {
        log.warn(`restart of ${s.name} failed: ${messageOf(e)}`);
        s.runtime.networkError = `restart failed: ${messageOf(e)}`;
        this.host.store.update(s);
        return "release";
      }
      this.host.store.event("restart", s, { restartCount: s.runtime.restart.count });
      log.debug(`${s.name} restarted as pid ${s.pid}${forced ? " (user)" : ` (restart ${s.runtime.restart.count})`}`);
      return "ok";
    });
    if (outcome === "release") {
      this.givingUp.add(id);
      await this.host.exited(id, exitCode);
    }
  }

  /**
   * slirp4netns or pasta died (ps shows "running (slirp4netns exited)"):
   * start it again on the same netns with the same options and publish the
   * same ports again. The sandbox keeps its address (the backend's fixed
   * one) and host ports (recorded as resolved).
   */
  private async healNetwork(s: Sandbox): Promise<void> {
    if (!s.runtime.backend || !this.host.health(s)) return;
    const mode = modeOfRow(s);
    const backend = this.host.backends.forMode(mode);
    if (!backend.setup) return;
    const ctx = this.host.setupContext(s);
    const errors: Error[] = [];
    if (s.runtime.ports?.length) errors.push(...(await this.host.ports.teardown(s)));
    if (backend.teardown) errors.push(...(await backend.teardown(s.runtime.backend, ctx)));
    for (const e of errors) log.debug(`restart of ${s.name}: old network: ${e.message}`);
    const net = await backend.setup(mode, ctx);
    s.runtime.backend = net.record;
    if (net.address) s.runtime.address = net.address;
    s.runtime.ipv6 = net.ipv6 || undefined;
    s.runtime.address6 = net.address6;
    this.host.store.update(s);
    if (s.runtime.ports?.length) s.runtime.ports = await this.host.ports.setup(s, s.runtime.ports);
    s.runtime.networkError = undefined;
    this.host.store.update(s);
    this.host.store.event("network-restart", s, { network: s.spec.network });
  }

  /**
   * Restart hook of `stop` and `rm -f`, before they signal the sandbox:
   * supervision ends (podman: a user stop is never restarted). A sandbox
   * waiting for its back-off has no process left to signal: its exit is
   * released here with the status it had.
   */
  async userStop(s: Sandbox): Promise<void> {
    this.forced.delete(s.id);
    const waiting = this.timers.has(s.id) || !!s.runtime.restart?.pending;
    this.clear(s.id);
    this.stopping.add(s.id);
    if (waiting) await this.host.exited(s.id, s.exitCode);
  }

  /** The holder died or the daemon ends: nothing is restarted any more. */
  close(): void {
    this.closed = true;
    for (const id of [...this.timers.keys()]) this.clear(id);
  }

  /** `burrow start`: a created or exited sandbox runs again; a running one is left alone. */
  start(ref: string): Promise<Sandbox> {
    const s = this.host.store.find(ref);
    const busy = this.starting.get(s.id);
    if (busy) return busy;
    const p = this.startNow(s.id).finally(() => this.starting.delete(s.id));
    this.starting.set(s.id, p);
    return p;
  }

  private async startNow(id: string): Promise<Sandbox> {
    const s = this.host.store.find(id);
    if (s.status === "running") return s;
    this.givingUp.delete(id);
    this.stopping.delete(id);
    if (s.status === "created" && pinsHold(s)) {
      await this.host.withLock(id, async () => {
        const again = this.host.store.find(id);
        if (again.status !== "created") return;
        again.runtime.restart = { count: 0 };
        this.host.spawnDetached(again);
      });
      return this.host.store.find(id);
    }
    if (s.runtime.netOf) {
      // container:NAME (the one mode that shares another sandbox's netns)
      const target = s.runtime.netOf ? this.findById(s.runtime.netOf) : undefined;
      if (target?.status !== "running")
        throw new BurrowError(
          `cannot start ${s.name}: it shares the network of ${target?.name ?? "a removed sandbox"}, which is not running (start that first)`,
          { kind: "not-running" },
        );
    }
    // Namespaces, network and ports again from the spec as recorded, in the
    // same row: the id, name, logs and RestartCount's history stay.
    const req: CreateRequest = { ...s.spec, detach: true, name: s.name };
    s.runtime.restart = { count: 0 };
    await this.host.recreate(s, req);
    return this.host.store.find(id);
  }

  private findById(id: string): Sandbox | undefined {
    try {
      return this.host.store.find(id);
    } catch {
      return undefined;
    }
  }

  /**
   * `burrow restart`: a running sandbox's processes get SIGTERM (SIGKILL
   * after `timeoutSec`) and its command is spawned again at once in the same
   * namespaces: IP, MAC, ports and aliases stay. Exited ones are started.
   */
  async restart(ref: string, timeoutSec: number): Promise<Sandbox> {
    const s = this.host.store.find(ref);
    if (s.status !== "running") return this.start(ref);
    if (!pinsHold(s)) throw new BurrowError(`cannot restart ${s.name}: its namespaces are gone`, { kind: "not-running" });
    const before = s.pid;
    this.forced.add(s.id);
    if (this.timers.has(s.id) || s.runtime.restart?.pending) {
      // Waiting for its back-off: come back now.
      this.schedule(s.id, 0);
    } else if (s.runtime.ino) {
      let open!: () => void;
      this.gates.set(s.id, new Promise<void>((r) => (open = r)));
      try {
        await terminate(s.runtime.ino.mnt, timeoutSec * 1000, s.runtime.pins?.mnt);
      } finally {
        this.gates.delete(s.id);
        open();
      }
    }
    // The exit is reported by whoever waits for the command (this daemon,
    // the foreground CLI, or reap within a second); then it is spawned again.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const now = this.host.store.find(s.id);
      if (now.status === "running" && now.pid && now.pid !== before && !now.runtime.restart?.pending) return now;
      if (now.status === "exited" && !this.host.isExiting(s.id)) {
        this.forced.delete(s.id);
        return this.start(s.id);
      }
      if (Date.now() > deadline) {
        this.forced.delete(s.id);
        throw new BurrowError(`restart of ${s.name} timed out: its command did not come back`, { kind: "timeout" });
      }
      await Bun.sleep(20);
    }
  }

  /** `burrow wait`: until the sandbox has exited for good (not while a policy restarts it). */
  async wait(ref: string): Promise<{ id: string; name: string; exitCode: number }> {
    let s = this.host.store.find(ref);
    for (;;) {
      if (s.status === "exited" && !this.host.isExiting(s.id)) return { id: s.id, name: s.name, exitCode: s.exitCode ?? -1 };
      await Bun.sleep(50);
      const now = this.findById(s.id);
      // Removed meanwhile (--rm): its last status is the answer.
      if (!now) return { id: s.id, name: s.name, exitCode: s.exitCode ?? -1 };
      s = now;
    }
  }
}

/** inspect's restart fields (podman: RestartCount, HostConfig.RestartPolicy) and Restarting state. */
export function withRestartView<T extends { State: Record<string, unknown>; HostConfig: Record<string, unknown> }>(
  view: T,
  s: Sandbox,
): T & { RestartCount: number } {
  const p = policyOf(s);
  const restarting = s.status === "running" && !!s.runtime.restart?.pending;
  return {
    ...view,
    State: restarting ? { ...view.State, Status: "restarting", Running: false, Restarting: true, Pid: 0 } : { ...view.State, Restarting: false },
    RestartCount: restartStateOf(s.runtime.restart).count,
    HostConfig: { ...view.HostConfig, RestartPolicy: { Name: s.spec.restart ? p.name : "", MaximumRetryCount: p.maxRetries } },
  };
}

/** ps: `Restarting (CODE) N seconds ago` while a restart waits for its back-off. */
export function withRestartRow<T extends { Status: string; State: string; Pid: number }>(row: T, s: Sandbox, now = Date.now()): T {
  if (s.status !== "running" || !s.runtime.restart?.pending) return row;
  const ago = s.finishedAt ? Math.max(0, Math.floor((now - Date.parse(s.finishedAt)) / 1000)) : 0;
  const when = ago < 1 ? "Less than a second ago" : `${ago} second${ago === 1 ? "" : "s"} ago`;
  return { ...row, State: "restarting", Status: `Restarting (${s.exitCode ?? "?"}) ${when}`, Pid: 0 };
}
