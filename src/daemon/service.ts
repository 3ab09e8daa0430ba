// Sandbox lifecycle in the daemon (main thread, session namespaces).
// Every request handler lives here; src/daemon/main.ts only routes.
import { randomBytes } from "node:crypto";
import { constants } from "node:os";
import { closeSync, mkdirSync, openSync, rmSync } from "node:fs";
import { BurrowError, Rollback, messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { pinDir, sandboxDir, type Paths } from "../paths.ts";
import type { CreateRequest, EnterTarget } from "../protocol.ts";
import type { NetworkBackend, SetupContext } from "../net/backend.ts";
import { parseNetworkMode, type NetworkMode } from "../net/mode.ts";
import { backendFor } from "../net/registry.ts";
import { createPinned, pinHolds, removePins } from "../sandbox/namespaces.ts";
import { etcBinds, etcFiles, writeInPlace } from "../sandbox/files.ts";
import { killAll, pidsInMountNs, terminate } from "../sandbox/processes.ts";
import { nameInUse, type PortRecord, type Sandbox, type SandboxStore } from "../state/sandboxes.ts";
import { roleEnv, selfCommand, SELF_ARGV0 } from "../sys/env.ts";
import { startTimeOf } from "../userns/session.ts";
import { etcContent } from "../sandbox/etc-content.ts";
import type { PortDriverSet } from "../ports/drivers.ts";
import type { CniNetworking } from "../net/cni/backend.ts";

export interface SessionInfo {
  /** Identity of the namespaces pins live in ("host" for rootful). */
  id: string;
  enter: EnterTarget["session"];
}

const HOSTNAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

function now(): string {
  return new Date().toISOString();
}

/** A sandbox still "created" with no process after this long was abandoned by its CLI. */
const ABANDONED_MS = 10_000;

const ADJECTIVES = ["brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "swift", "witty", "bold", "gentle"];
const ANIMALS = ["badger", "mole", "rabbit", "fox", "vole", "otter", "wombat", "marmot", "gopher", "shrew", "stoat", "hare"];

export class SandboxService {
  /** Detached sandboxes whose main process the daemon itself waits for. */
  private children = new Map<string, Bun.Subprocess>();
  /** Busy counter for idle detection. */
  inflight = 0;
  /** Sandboxes whose create is under way: their row exists before their pins. */
  private creating = new Set<string>();
  /** Per-sandbox lock: create, exit/release, remove, connect/disconnect/reload take turns. */
  private locks = new Map<string, Promise<unknown>>();

  /**
   * Runs `fn` when no other state change of sandbox `id` is under way. Never
   * call it from inside `fn` for the same id (it would wait for itself).
   */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.locks.get(id) ?? Promise.resolve()).then(fn, fn);
    const tail = next.then(
      () => {},
      () => {},
    );
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return next;
  }

  /** True while the sandbox's exit is being recorded or its network released. */
  isExiting(id: string): boolean {
    return this.exiting.has(id);
  }

  constructor(
    readonly paths: Paths,
    readonly store: SandboxStore,
    readonly session: SessionInfo,
    readonly bootId: string,
    readonly ports: PortDriverSet,
    readonly cni: CniNetworking,
  ) {}

  defaultNetwork(): string {
    return this.paths.rootless ? "slirp4netns" : "bridge";
  }

  private randomName(): string {
    for (;;) {
      const pick = <T>(a: T[]) => a[Math.floor(Math.random() * a.length)]!;
      const name = `${pick(ADJECTIVES)}_${pick(ANIMALS)}${Math.floor(Math.random() * 100)}`;
      if (!this.store.nameTaken(name)) return name;
    }
  }

  enterTarget(s: Sandbox): EnterTarget & { cwd: string } {
    if (!s.runtime.pins) throw new BurrowError(`sandbox ${s.name} is not running`, { kind: "not-running" });
    const target = { session: this.session.enter, ...s.runtime.pins, cwd: s.spec.cwd };
    // Host network: the caller is in it already, and rootless could not
    // setns into it anyway (it belongs to the host's user namespace).
    if (s.runtime.network === "host") return { ...target, net: undefined };
    return target;
  }

  private ctx(s: Sandbox): SetupContext {
    return { paths: this.paths, sandbox: s, netns: s.runtime.pins?.net ?? "", dir: sandboxDir(this.paths, s.id) };
  }

  /** Resolves container:NAME into a plain "join that netns" plan. */
  private containerPlan(mode: Extract<NetworkMode, { kind: "container" }>) {
    const target = this.store.find(mode.ref);
    if (target.status !== "running" || !target.runtime.pins)
      throw new BurrowError(`cannot share the network of sandbox "${mode.ref}": it is not running`, { kind: "bad-input" });
    return { newNet: false, joinNet: target.runtime.pins.net, netOf: target.id, target };
  }

  async create(req: CreateRequest): Promise<{ id: string; name: string; enter: EnterTarget & { cwd: string } }> {
    const tStart = performance.now();
    const name = req.name ?? this.randomName();
    const hostname = req.hostname ?? name.slice(0, 63);
    if (!HOSTNAME.test(hostname))
      throw new BurrowError(`invalid hostname "${hostname}": use at most 64 letters, digits, _ . or -, starting with a letter or digit`, { kind: "bad-input" });
    const networkRaw = req.network ?? this.defaultNetwork();
    const mode = parseNetworkMode(networkRaw);
    let backend: NetworkBackend | null = null;
    let plan: { newNet: boolean; joinNet?: string; netOf?: string };
    let sharedFrom: Sandbox | undefined;
    if (mode.kind === "container") {
      const c = this.containerPlan(mode);
      plan = c;
      sharedFrom = c.target;
      if (req.ports.length) throw new BurrowError(`-p cannot be used with --network container:${mode.ref}: publish ports on "${c.target.name}" instead`, { kind: "bad-input" });
    } else {
      backend = backendFor(mode);
      await backend.validate(mode, this.paths);
      plan = backend.plan(mode);
    }
    // podman v3: these only mean something on bridge networks.
    for (const [flag, given] of [["--ip", req.ip], ["--mac-address", req.mac], ["--network-alias", req.aliases.length ? req.aliases.join(",") : undefined]] as const) {
      if (given !== undefined && mode.kind !== "cni")
        throw new BurrowError(`${flag} ${given} can only be used with bridge networks (--network bridge or a network name), not --network ${mode.kind}`, { kind: "bad-input" });
    }
    const portSpecs = this.ports.parse(req.ports, mode);
    // A sandbox of that name may be in its background release (`run --rm`
    // just returned): its name is free once that is done.
    const releasing = this.store.all().find((o) => o.name === name && this.exiting.has(o.id));
    if (releasing) await this.settled(releasing.id);
    if (this.store.nameTaken(name)) throw nameInUse(name);

    const id = randomBytes(32).toString("hex");
    const s: Sandbox = {
      id,
      name,
      createdAt: now(),
      status: "created",
      pid: null,
      pidStart: null,
      exitCode: null,
      startedAt: null,
      finishedAt: null,
      bootId: this.bootId,
      session: this.session.id,
      spec: { ...req, name, hostname, network: networkRaw },
      runtime: { pins: null, ino: null, network: mode.kind, netOf: plan.netOf },
    };
    return this.withLock(id, () => this.createLocked(id, s, { req, mode, backend, plan, sharedFrom, portSpecs, hostname, name, networkRaw, tStart }));
  }

  private async createLocked(
    id: string,
    s: Sandbox,
    c: {
      req: CreateRequest;
      mode: NetworkMode;
      backend: NetworkBackend | null;
      plan: { newNet: boolean; joinNet?: string; netOf?: string };
      sharedFrom?: Sandbox;
      portSpecs: PortRecord[];
      hostname: string;
      name: string;
      networkRaw: string;
      tStart: number;
    },
  ): Promise<{ id: string; name: string; enter: EnterTarget & { cwd: string } }> {
    const { req, mode, backend, plan, sharedFrom, portSpecs, hostname, name, networkRaw, tStart } = c;
    const undo = new Rollback();
    try {
      // The row first: it reserves the name against a concurrent create.
      this.creating.add(id);
      this.store.insert(s);
      undo.push("state row", () => this.store.delete(id));
      const dir = sandboxDir(this.paths, id);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      undo.push("sandbox dir", () => rmSync(dir, { recursive: true, force: true }));
      const files = etcFiles(dir);
      const initial = etcContent({ mode, hostname, name, dns: req.dns, sharedDir: sharedFrom && sandboxDir(this.paths, sharedFrom.id) });
      writeInPlace(files.hosts, initial.hosts);
      writeInPlace(files.resolv, initial.resolv);
      writeInPlace(files.hostname, `${hostname}\n`);

      const t0 = performance.now();
      const { pins, ino } = await createPinned(
        { hostname, newNet: plan.newNet, joinNet: plan.joinNet, binds: etcBinds(files) },
        pinDir(this.paths, id),
      );
      s.runtime.pins = pins;
      s.runtime.ino = ino;
      // Saved at once: a daemon killed mid-create leaves a row the next one can release.
      this.store.update(s);
      undo.push("pins", () => {
        const errs = removePins(pins, pinDir(this.paths, id));
        if (errs.length) throw errs[0];
      });
      undo.push("processes", () => killAll(ino.mnt));

      const t1 = performance.now();
      if (portSpecs.length) s.runtime.ports = await this.ports.prepare(mode, portSpecs);
      if (backend) {
        const net = await backend.setup(mode, this.ctx(s));
        s.runtime.backend = net.record;
        s.runtime.address = net.address;
        this.store.update(s);
        undo.push("network", async () => {
          const errs = await backend!.teardown(net.record, this.ctx(s));
          if (errs.length) throw errs[0];
        });
        const content = etcContent({ mode, hostname, name, dns: req.dns, net });
        writeInPlace(files.hosts, content.hosts);
        writeInPlace(files.resolv, content.resolv);
      }
      if (portSpecs.length) {
        s.runtime.ports = await this.ports.setup(s, s.runtime.ports ?? portSpecs);
        undo.push("ports", async () => {
          const errs = await this.ports.teardown(s);
          if (errs.length) throw errs[0];
        });
      }
      this.store.update(s);
      log.debug(`create ${name}: before ns ${(t0 - tStart).toFixed(1)} ms, namespaces ${(t1 - t0).toFixed(1)} ms, network+ports ${(performance.now() - t1).toFixed(1)} ms`);
      this.store.event("create", s, { network: networkRaw });
      if (req.detach) this.spawnDetached(s);
      undo.commit();
      return { id, name, enter: this.enterTarget(s) };
    } catch (e) {
      const errs = await undo.unwind();
      for (const err of errs) log.warn(`rollback of ${name}: ${err.message}`);
      throw e;
    } finally {
      this.creating.delete(id);
    }
  }

  private spawnDetached(s: Sandbox): void {
    const dir = sandboxDir(this.paths, s.id);
    const logFd = openSync(`${dir}/log`, "a", 0o600);
    try {
      const proc = Bun.spawn([...selfCommand(), "__enter", JSON.stringify(this.enterTarget(s)), "--", ...s.spec.argv], {
      argv0: SELF_ARGV0,
        env: roleEnv(s.spec.env),
        stdin: "ignore",
        stdout: logFd,
        stderr: logFd,
        detached: true,
      });
      this.children.set(s.id, proc);
      this.markStarted(s, proc.pid);
      proc.exited.then((code) => {
        this.children.delete(s.id);
        const exit = proc.signalCode ? 128 + (signalNumber(String(proc.signalCode)) ?? 0) : code;
        this.exited(s.id, exit).catch((e) => log.warn(`cleanup of ${s.name}: ${messageOf(e)}`));
      });
    } finally {
      closeSync(logFd);
    }
  }

  private markStarted(s: Sandbox, pid: number): void {
    s.status = "running";
    s.pid = pid;
    s.pidStart = startTimeOf(pid);
    s.startedAt = now();
    this.store.update(s);
    this.store.event("start", s, { pid });
  }

  started(id: string, pid: number): void {
    const s = this.store.find(id);
    if (s.status !== "created") return;
    this.markStarted(s, pid);
  }

  /** Exit reports being handled, by sandbox id: settle with `done`. */
  private exiting = new Map<string, { visible: Promise<void>; done: Promise<Error[]> }>();

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

  releasing(): number {
    return this.exiting.size;
  }

  /**
   * A second report while the first is handled (the waiter, stop's
   * fallback, rm -f) waits for it instead of releasing the network again,
   * then only adds the exit code.
   */
  private recordExit(id: string, exitCode: number | null): { visible: Promise<void>; done: Promise<Error[]> } {
    const busy = this.exiting.get(id);
    if (busy) {
      const done = busy.done.catch(() => []).then(() => this.recordExit(id, exitCode).done).then(() => [] as Error[]);
      return { visible: busy.visible, done };
    }
    let markVisible!: () => void;
    const visible = new Promise<void>((r) => (markVisible = r));
    const done = this.exitedNow(id, exitCode, markVisible).finally(() => {
      markVisible();
      this.exiting.delete(id);
    });
    const entry = { visible, done };
    this.exiting.set(id, entry);
    return entry;
  }

  private exitedNow(id: string, exitCode: number | null, visible: () => void): Promise<Error[]> {
    return this.withLock(id, () => this.exitedLocked(id, exitCode, visible));
  }

  private async exitedLocked(id: string, exitCode: number | null, visible: () => void): Promise<Error[]> {
    let s: Sandbox;
    try {
      s = this.store.find(id);
    } catch {
      return [];
    }
    if (s.status === "exited") {
      if (s.exitCode === null && exitCode !== null) {
        s.exitCode = exitCode;
        this.store.update(s);
      }
      return [];
    }
    s.status = "exited";
    s.exitCode = exitCode;
    s.finishedAt = now();
    // First what a next command could trip over: leftover processes and
    // the host ports (a `run --rm -p 8080:80` right after must find 8080 free).
    const errors = await this.releaseProcessesAndPorts(s);
    this.store.update(s);
    visible();
    errors.push(...(await this.releaseNetwork(s)));
    this.store.update(s);
    this.store.event("died", s, { exitCode });
    if (s.spec.rm) errors.push(...(await this.remove(s)));
    for (const e of errors) log.warn(`cleanup of ${s.name}: ${e.message}`);
    return errors;
  }

  /** Kills what is left and removes ports, network and pins (not the row). */
  private async release(s: Sandbox): Promise<Error[]> {
    return [...(await this.releaseProcessesAndPorts(s)), ...(await this.releaseNetwork(s))];
  }

  private async releaseProcessesAndPorts(s: Sandbox): Promise<Error[]> {
    const errors: Error[] = [];
    if (s.runtime.ino) await killAll(s.runtime.ino.mnt);
    if (s.runtime.ports?.length) errors.push(...(await this.ports.teardown(s)));
    return errors;
  }

  private async releaseNetwork(s: Sandbox): Promise<Error[]> {
    const errors: Error[] = [];
    const lap = timer();
    const kind = s.runtime.network as NetworkMode["kind"];
    if (s.runtime.backend && kind !== "container") {
      try {
        const backend = backendFor({ kind } as NetworkMode);
        errors.push(...(await backend.teardown(s.runtime.backend, this.ctx(s))));
      } catch (e) {
        errors.push(e as Error);
      }
      s.runtime.backend = undefined;
    }
    lap("network");
    if (s.runtime.pins) {
      errors.push(...removePins(s.runtime.pins, pinDir(this.paths, s.id)));
      s.runtime.pins = null;
    }
    lap("pins");
    log.debug(`release ${s.name}: ${lap.report()}`);
    return errors;
  }

  private dependents(s: Sandbox): Sandbox[] {
    return this.store.all().filter((o) => o.runtime.netOf === s.id && o.status !== "exited");
  }

  async stop(ref: string, timeoutSec: number): Promise<Sandbox> {
    const s = this.store.find(ref);
    if (s.status === "exited") return s;
    if (s.runtime.ino) await terminate(s.runtime.ino.mnt, timeoutSec * 1000);
    // The waiter (CLI or this daemon) reports the exit status; give it a moment.
    // A --rm sandbox's waiter may remove it meanwhile: stopped all the same.
    const running = () => this.exists(s.id) && this.store.find(s.id).status !== "exited";
    for (let i = 0; i < 50 && running(); i++) await Bun.sleep(10);
    if (running()) await this.exited(s.id, null);
    // stop returns with the sandbox fully released (network included).
    await this.settled(s.id);
    return this.exists(s.id) ? this.store.find(s.id) : s;
  }

  async rm(ref: string, force: boolean): Promise<{ id: string; name: string }> {
    const s = this.store.find(ref);
    const deps = this.dependents(s);
    if (deps.length)
      throw new BurrowError(`sandbox ${s.name} shares its network with ${deps.map((d) => d.name).join(", ")}: remove those first`, { kind: "in-use" });
    if (s.status !== "exited" && !force)
      throw new BurrowError(`sandbox ${s.name} is ${s.status}: stop it first (burrow stop ${s.name}) or remove it with burrow rm -f`, { kind: "running" });
    const errors: Error[] = [];
    if (s.status !== "exited" || this.exiting.has(s.id)) {
      // Through the exit path (it waits for a create under way): killing the
      // main process makes its waiter report the exit meanwhile, which must
      // not release the network a second time; and the sandbox "died"
      // before it is removed.
      if (s.runtime.ino) await killAll(s.runtime.ino.mnt);
      errors.push(...(await this.recordExit(s.id, null).done));
    }
    await this.withLock(s.id, async () => {
      if (!this.exists(s.id)) return; // --rm removed it already
      errors.push(...(await this.remove(this.store.find(s.id))));
    });
    if (errors.length) throw new BurrowError(`removed ${s.name}, but cleanup reported: ${errors.map(messageOf).join("; ")}`, { kind: "cleanup" });
    return { id: s.id, name: s.name };
  }

  /** Deletes an exited sandbox's files and row, releasing anything a crash left. Under its lock. */
  private async remove(s: Sandbox): Promise<Error[]> {
    const errors: Error[] = [];
    if (s.runtime.pins || s.runtime.backend || s.runtime.ports?.length) errors.push(...(await this.release(s)));
    this.children.get(s.id)?.kill(9);
    try {
      rmSync(sandboxDir(this.paths, s.id), { recursive: true, force: true });
    } catch (e) {
      errors.push(e as Error);
    }
    this.store.delete(s.id);
    this.store.event("remove", s);
    return errors;
  }

  private exists(id: string): boolean {
    try {
      this.store.find(id);
      return true;
    } catch {
      return false;
    }
  }

  list(all: boolean): Sandbox[] {
    return this.store.all().filter((s) => all || s.status === "running" || s.status === "created");
  }

  logPath(ref: string): string {
    const s = this.store.find(ref);
    return `${sandboxDir(this.paths, s.id)}/log`;
  }

  /** Sandboxes whose processes or pins vanished behind our back. */
  async reap(restore = false): Promise<void> {
    for (const s of this.store.all()) {
      if (s.status === "exited") continue;
      if (this.children.has(s.id) || this.creating.has(s.id)) continue;
      const pinsOk = !!s.runtime.pins && !!s.runtime.ino && pinHolds(s.runtime.pins.mnt, s.runtime.ino.mnt);
      if (restore && pinsOk && s.runtime.ports?.length) {
        await this.ports.restore(s).catch((e) => {
          s.runtime.networkError = `ports not restored: ${messageOf(e)}`;
          this.store.update(s);
        });
      }
      if (s.status === "running") {
        const gone = !s.pid || startTimeOf(s.pid) !== s.pidStart;
        if (gone || !pinsOk) await this.exited(s.id, null);
      } else if (!pinsOk) {
        await this.exited(s.id, null);
      } else if (Date.now() - Date.parse(s.createdAt) > ABANDONED_MS && !this.processes(s).length) {
        // Created for a foreground run whose CLI died before starting the
        // command: nobody will ever start it.
        await this.exited(s.id, null);
      }
    }
  }

  /**
   * At start: drop what a reboot or a dead session took away, and finish
   * releases a killed daemon left half done (an exited row that still has
   * pins, a network or ports; a --rm row not yet removed).
   */
  async reconcile(): Promise<void> {
    for (const s of this.store.all()) {
      const stale = s.bootId !== this.bootId || s.session !== this.session.id;
      const leftovers = !!(s.runtime.pins || s.runtime.backend || s.runtime.ports?.length);
      const wasRunning = s.status !== "exited";
      if (wasRunning && !stale) continue; // reap() checks those
      if (!wasRunning && !leftovers) {
        if (s.spec.rm) await this.withLock(s.id, () => this.remove(s)).catch(() => {});
        continue;
      }
      if (s.bootId !== this.bootId) {
        // After a reboot nothing of it runs, and its inode numbers and pids
        // may now name someone else's: forget them, clean only our paths.
        if (s.runtime.pins) removePins(s.runtime.pins, pinDir(this.paths, s.id));
        s.runtime.ino = null;
        s.runtime.backend = undefined;
        s.runtime.ports = undefined;
        s.runtime.pins = null;
      } else if (s.session !== this.session.id) {
        // A dead session's processes may still run: kill them by namespace.
        // Its pins are unreachable (its mount namespace is gone).
        if (s.runtime.ino) await killAll(s.runtime.ino.mnt);
        s.runtime.pins = null;
      }
      s.status = "exited";
      s.finishedAt ??= now();
      const errs = await this.release(s);
      for (const e of errs) log.debug(`reconcile ${s.name}: ${e.message}`);
      this.store.update(s);
      if (wasRunning) this.store.event("died", s, { reason: "session gone" });
      if (s.spec.rm) await this.withLock(s.id, () => this.remove(s)).catch(() => {});
    }
    await this.reap(true);
  }

  /** The holder died: every sandbox of this session is gone. */
  async sessionLost(): Promise<void> {
    for (const s of this.store.all()) {
      if (s.status === "exited") continue;
      await this.exited(s.id, null).catch(() => {});
    }
  }

  active(): number {
    return this.store.all().filter((s) => s.status !== "exited").length;
  }

  processes(s: Sandbox): number[] {
    return s.runtime.ino ? pidsInMountNs(s.runtime.ino.mnt) : [];
  }

  health(s: Sandbox): string | null {
    const kind = s.runtime.network as NetworkMode["kind"];
    if (s.status !== "running" || !s.runtime.backend || kind === "container") return null;
    try {
      const b = backendFor({ kind } as NetworkMode);
      if (b.healthy && !b.healthy(s.runtime.backend)) return `${kind} exited`;
    } catch {}
    return null;
  }

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
