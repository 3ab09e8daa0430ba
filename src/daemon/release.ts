// The end of a sandbox: its exit is recorded once, then its processes, host
// ports, network and pins are released (the network in the background),
// and `rm` deletes what is left. Daemon main thread.
//
// The state machine: a sandbox is `exiting` from its first exit report
// until its release is done; `settled()` waits for that. A second report
// meanwhile (the waiter, stop's fallback, rm -f) waits for the first
// instead of releasing again, then only adds the exit code.
import { constants } from "node:os";
import { rmSync } from "node:fs";
import { BurrowError, messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { pinDir, sandboxDir, sandboxStateDir } from "../paths.ts";
import { removePins } from "../namespaces/pins.ts";
import { killAll, type PidsSince, terminate } from "../sys/processes.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import { now, sandboxLabel, setupContext, type DaemonContext } from "./context.ts";
import { stopEgress } from "./egress.ts";

type Exiting = { visible: Promise<void>; done: Promise<Error[]> };

export class SandboxReleases {
  /** Exit reports being handled, by sandbox id: settle with `done`. */
  private exiting = new Map<string, Exiting>();

  constructor(private readonly ctx: DaemonContext) {}

  /** True while the sandbox's exit is being recorded or its network released. */
  isExiting(id: string): boolean {
    return this.exiting.has(id);
  }

  /** How many sandboxes are being released. */
  count(): number {
    return this.exiting.size;
  }

  /**
   * The sandbox's main process ended: record it and release everything.
   * Resolves once the exit is visible and its processes and host ports are
   * gone; the network and the pins are released after that, in the
   * background (a bridge's CNI DEL takes ~130 ms), like Docker's --rm. Every
   * operation that observes state first waits for them (settled()), so
   * nobody sees a half-released sandbox.
   */
  async exited(id: string, exitCode: number | null, opts: { wait?: boolean } = {}): Promise<void> {
    const r = this.recordExit(id, exitCode);
    await (opts.wait === false ? r.visible : r.done);
  }

  /** Waits until no sandbox is being released (all of them, or `id`'s). */
  async settled(id?: string): Promise<void> {
    const pending = id ? [this.exiting.get(id)] : [...this.exiting.values()];
    await Promise.all(pending.map((p) => p?.done.catch(() => [])));
  }

  private recordExit(id: string, exitCode: number | null): Exiting {
    const busy = this.exiting.get(id);
    if (busy) {
      const done = busy.done
        .catch(() => [])
        .then(() => this.recordExit(id, exitCode).done)
        .then(() => [] as Error[]);
      return { visible: busy.visible, done };
    }
    let markVisible!: () => void;
    const visible = new Promise<void>((r) => (markVisible = r));
    const done = this.ctx.locks
      .run(id, () => this.exitedLocked(id, exitCode, markVisible))
      .finally(() => {
        markVisible();
        this.exiting.delete(id);
      });
    const entry = { visible, done };
    this.exiting.set(id, entry);
    return entry;
  }

  private async exitedLocked(id: string, exitCode: number | null, visible: () => void): Promise<Error[]> {
    const { store } = this.ctx;
    let s: Sandbox;
    try {
      s = store.find(id);
    } catch {
      return []; // removed meanwhile
    }
    if (s.status === "exited") {
      if (s.exitCode === null && exitCode !== null) {
        s.exitCode = exitCode;
        store.update(s);
      }
      return [];
    }
    // restart hook: an exit the policy restarts keeps pins, network and ports.
    if (await this.ctx.restarts.onExit(s, exitCode)) return [];
    s.status = "exited";
    s.exitCode = exitCode;
    s.finishedAt = now();
    // First what a next command could trip over: leftover processes and
    // the host ports (a `run --rm -p 8080:80` right after must find 8080 free).
    const errors = await this.releaseProcessesAndPorts(s);
    store.update(s);
    visible();
    // The exit report's reply goes out before the rest: without a turn of
    // the event loop here, a sandbox without a network backend (none, host,
    // container:) would have its pins, directories and --rm row removed
    // synchronously, ahead of the reply (~1-2 ms of every `run --rm`).
    // Whoever could see the rest waits for it: settled() before every
    // operation that observes state, and a create by the same name
    // (src/daemon/create.ts).
    await new Promise<void>((r) => setImmediate(r));
    errors.push(...(await this.releaseNetwork(s)));
    store.update(s);
    store.event("died", s, { exitCode });
    if (s.spec.rm) errors.push(...(await this.remove(s)));
    for (const e of errors) log.warn(`cleanup of ${sandboxLabel(s)}: ${e.message}`);
    return errors;
  }

  /** Kills what is left and removes ports, network and pins (not the row). */
  async release(s: Sandbox): Promise<Error[]> {
    return [...(await this.releaseProcessesAndPorts(s)), ...(await this.releaseNetwork(s))];
  }

  private async releaseProcessesAndPorts(s: Sandbox): Promise<Error[]> {
    const errors: Error[] = [];
    // Only while pinned: a released sandbox's namespace is gone and its inode may name another's.
    if (s.runtime.ino && s.runtime.pins) await killAll(s.runtime.ino.mnt, s.runtime.pins.mnt, sinceCreate(s));
    // Its processes are gone: their listeners and pending connects go too.
    if (s.spec.accelerate) await this.ctx.accelerator.forget(s.id);
    // Its resolver stops serving it and closes its sockets; its egress table goes with its netns.
    stopEgress(this.ctx, s);
    if (s.runtime.ports?.length) errors.push(...(await this.ctx.ports.teardown(s)));
    return errors;
  }

  private async releaseNetwork(s: Sandbox): Promise<Error[]> {
    const errors: Error[] = [];
    const lap = timer();
    if (s.runtime.backend) {
      try {
        const backend = this.ctx.backends.forKind(s.runtime.network);
        if (backend.teardown) errors.push(...(await backend.teardown(s.runtime.backend, setupContext(this.ctx, s))));
      } catch (e) {
        errors.push(e as Error);
      }
      s.runtime.backend = undefined;
    }
    lap("network");
    if (s.runtime.pins) {
      errors.push(...removePins(s.runtime.pins, pinDir(this.ctx.paths, s.id)));
      s.runtime.pins = null;
    }
    lap("pins");
    log.debug(`release ${s.name}: ${lap.report()}`);
    return errors;
  }

  async stop(ref: string, timeoutSec: number): Promise<Sandbox> {
    const { store } = this.ctx;
    const s = store.find(ref);
    if (s.status === "exited") return s;
    await this.ctx.restarts.userStop(s); // restart hook: a user stop is never restarted
    if (store.has(s.id)) {
      // inspect's State.StoppedByUser: on the row as it is now (not `s`, which an exit may have changed since).
      const now = store.find(s.id);
      now.runtime.stoppedByUser = true;
      store.update(now);
    }
    if (s.runtime.ino && s.runtime.pins) await terminate(s.runtime.ino.mnt, timeoutSec * 1000, s.runtime.pins.mnt);
    // The waiter (CLI or this daemon) reports the exit status; give it a moment.
    // A --rm sandbox's waiter may remove it meanwhile: stopped all the same.
    const running = () => store.has(s.id) && store.find(s.id).status !== "exited";
    for (let i = 0; i < 50 && running(); i++) await Bun.sleep(10);
    if (running()) await this.exited(s.id, null);
    // stop returns with the sandbox fully released (network included).
    await this.settled(s.id);
    return store.has(s.id) ? store.find(s.id) : s;
  }

  /**
   * Removes a sandbox. Sandboxes that joined its network (container:NAME)
   * are podman's dependants: a running one refuses the removal, unless
   * `depend`, which removes every dependant first (theirs before them),
   * as podman's `rm --depend`. Returns what was removed, in order, the
   * sandbox itself last.
   */
  async rm(ref: string, force: boolean, depend = false): Promise<{ id: string; name: string; removed: Array<{ id: string; name: string }> }> {
    const { store } = this.ctx;
    const s = store.find(ref);
    const removed: Array<{ id: string; name: string }> = [];
    // Refused before any dependant goes: a running sandbox without -f stays, and so do they.
    if (s.status !== "exited" && !force)
      throw new BurrowError(`sandbox ${s.name} is ${s.status}: stop it first (burrow stop ${s.name}) or remove it with burrow rm -f`, { kind: "running" });
    if (depend) {
      for (const dep of store.all().filter((o) => o.runtime.netOf === s.id)) {
        if (!store.has(dep.id)) continue; // gone with an earlier one (--rm)
        removed.push(...(await this.rm(dep.id, force, true)).removed);
      }
    }
    const deps = store.all().filter((o) => o.runtime.netOf === s.id && o.status !== "exited");
    if (deps.length)
      throw new BurrowError(
        `sandbox ${s.name} shares its network with ${deps.map((d) => d.name).join(", ")}: remove those first, or all of them with burrow rm -f --depend ${s.name}`,
        { kind: "in-use" },
      );
    const errors: Error[] = [];
    if (s.status !== "exited" || this.exiting.has(s.id)) {
      // Through the exit path (it waits for a create under way): killing the
      // main process makes its waiter report the exit meanwhile, which must
      // not release the network a second time; and the sandbox "died"
      // before it is removed.
      if (s.status !== "exited") await this.ctx.restarts.userStop(s); // restart hook: rm -f stops it for good
      if (s.runtime.ino && s.runtime.pins) await killAll(s.runtime.ino.mnt, s.runtime.pins.mnt);
      errors.push(...(await this.recordExit(s.id, null).done));
    }
    await this.ctx.locks.run(s.id, async () => {
      if (!store.has(s.id)) return; // --rm removed it already
      errors.push(...(await this.remove(store.find(s.id))));
    });
    if (errors.length) throw new BurrowError(`removed ${s.name}, but cleanup reported: ${errors.map(messageOf).join("; ")}`, { kind: "cleanup" });
    removed.push({ id: s.id, name: s.name });
    return { id: s.id, name: s.name, removed };
  }

  /**
   * Deletes an exited sandbox's files and row, releasing anything a crash
   * left. Under its lock. Its recorded ports alone are no leftover: an
   * exited row keeps them for inspect, and they were torn down at its exit
   * (a second teardown could close a concurrent create's port pick,
   * src/ports/portmap/driver.ts); what a killed daemon left of them,
   * reconcile() releases before it removes the row.
   */
  async remove(s: Sandbox): Promise<Error[]> {
    const errors: Error[] = [];
    if (s.runtime.pins || s.runtime.backend) errors.push(...(await this.release(s)));
    this.ctx.children.get(s.id)?.kill(9);
    try {
      rmSync(sandboxDir(this.ctx.paths, s.id), { recursive: true, force: true });
      rmSync(sandboxStateDir(this.ctx.paths, s.id), { recursive: true, force: true });
    } catch (e) {
      errors.push(e as Error);
    }
    this.ctx.store.delete(s.id);
    this.ctx.store.event("remove", s);
    return errors;
  }
}

/**
 * What killAll may look at instead of all of /proc: the pids handed out
 * since the sandbox's namespaces were made, and its command's (a foreground
 * run's, started ahead of them). None for a row without a mark, or with one
 * whose fields are not all counts (the state database is ours, but checked
 * all the same: a bad mark would hide processes from the release).
 */
function sinceCreate(s: Sandbox): PidsSince | undefined {
  const m = s.runtime.pidMark;
  const count = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
  if (!m || ![m.lastPid, m.forks, m.forksAfter, m.threads, m.pidMax].every(count)) return undefined;
  return { mark: m, known: s.pid !== null && s.pid > 0 ? [s.pid] : [] };
}

/** Phase timings for debug logs: lap("x") after each phase, report() at the end. */
function timer() {
  let last = performance.now();
  const laps: string[] = [];
  const lap = (what: string) => {
    const now = performance.now();
    laps.push(`${what} ${(now - last).toFixed(1)}`);
    last = now;
  };
  lap.report = () => `${laps.join(", ")} ms`;
  return lap;
}

export function signalNumber(name: string): number | undefined {
  return constants.signals[name as NodeJS.Signals];
}
