// Main-thread side of the accelerator Worker (src/accelerate/worker.ts):
// started on the first accelerated sandbox, it owns the handoff socket
// (RUNTIME_DIR/accelerate.sock, in the user's private runtime dir) and tells
// the Worker which tokens to expect. docs/accelerate.md has the design.
import { TOKEN_MS } from "./tokens.ts";
import { WindowCount } from "../window-count.ts";
import { randomBytes } from "node:crypto";
import { readdirSync, readlinkSync, rmSync, statSync } from "node:fs";
import type { Refusal } from "../egress/refusals.ts";
import { BurrowError } from "../errors.ts";
import { log } from "../log.ts";
import { close } from "../sys/ns.ts";
import { accelerationSupport, copyProcessFd } from "../sys/seccomp.ts";
import { startTimeOf } from "../sys/processes.ts";
import { spawnListenerKeeper } from "../sandbox/enter-spawn.ts";
import type { HelperLedger } from "../state/helpers.ts";
import { pipe, setBlocking, writeAll } from "../sys/sockets.ts";
import { listenUnix } from "../sys/unix-socket.ts";
import { workerUrl } from "../workers.ts";
import type { AcceleratorCommand, AcceleratorEgress, AcceleratorInit, AcceleratorReport, LearnedEntry } from "./protocol.ts";
import { readUnanswered, unansweredBuffer } from "./unanswered.ts";
import type { Scope } from "./scope.ts";
import type { HeldPort, LentPort } from "../ports/driver.ts";

/** What an accelerated enter step is given: where to hand its listener over, and the token that names it. */
export interface Handoff {
  socket: string;
  token: string;
}

/** Refuses --accelerate in one line naming what this machine lacks. */
export function checkAccelerationSupport(): void {
  const s = accelerationSupport();
  if (!s.ok) throw new BurrowError(`--accelerate needs ${s.missing}`, { kind: "bad-input" });
}

/** What the accelerator needs from the daemon to lend published ports to servers in sandboxes (docs/accelerate.md "Inbound"). */
export interface PortLender {
  /** The host socket of sandbox `id`'s one builtin-forwarded TCP port to container port `port`, lent; null when there is none to lend. */
  lend(id: string, port: number, family: 4 | 6): Promise<LentPort | null>;
  /** The pids of sandbox `id`'s processes now. */
  processes(id: string): number[];
}

/**
 * A connect of sandbox `id` that its egress policy refused (answered
 * ECONNREFUSED, no host socket), or with `logOnly` (--egress-log-only) let
 * out and reported as it would have been refused. Not folded: the daemon
 * offers each to the sandbox's RefusalEvents (src/egress/refusals.ts), as
 * the ruleset's NFLOG refusals.
 */
export type RefusalHook = (id: string, refusal: Refusal, logOnly: boolean) => void;

const EADDRINUSE = 98;

/** While a port is lent, whether some process of its sandbox still holds it is checked this often. */
const TAKE_BACK_MS = 500;
/** The Worker's restarts are counted over this window. */
const RESTART_WINDOW_MS = 60_000;
/** A sandbox whose calls crashed the Worker this often in the window is served without acceleration (every call CONTINUE) from then on. */
const CRASHES_PER_SANDBOX = 3;
/** More restarts than this in the window, whoever caused them: every sandbox runs unaccelerated from then on, and one more death in the window leaves the supervisor down until the daemon restarts. */
const RESTARTS_LIMIT = 10;

/** What the main thread registered for a sandbox: enough to hand a restarted Worker everything again. */
interface Registered {
  key: number;
  scope: Scope;
  egress?: AcceleratorEgress;
  /** The resolver's addresses for it (`allowIndex address` -> expiry), handed to a restarted Worker with the policy. */
  learned: Map<string, LearnedEntry>;
  /** When its calls crashed the Worker, within the window. */
  crashes: WindowCount;
  passthrough: boolean;
}

/** The socket inode of our fd `fd` ("socket:[INODE]"). */
function socketInode(fd: number): number {
  return statSync(`/proc/self/fd/${fd}`).ino;
}

/** Does some process in `pids` hold the socket with inode `inode`? */
function heldBy(pids: number[], inode: number): boolean {
  const link = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone meanwhile
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === link) return true;
      } catch {}
    }
  }
  return false;
}

interface LentOut {
  id: string;
  port: LentPort;
  inode: number;
}

export class Accelerator {
  private lender: PortLender | undefined;
  /** Sockets sent to the Worker for a bind, not yet confirmed (by ask). */
  private readonly lending = new Map<number, LentOut>();
  /** Sockets sandboxed servers hold now: the forwarder takes each back once no process of its sandbox has it. */
  private readonly lent = new Set<LentOut>();
  private takeBackTimer: ReturnType<typeof setInterval> | undefined;
  private worker: Worker | undefined;
  private controlFd = -1;
  /** The handoff socket: the main thread's, so that a restarted Worker accepts on the same one (a step connecting meanwhile waits in its backlog). */
  private handoffFd = -1;
  /** The current Worker's table of unanswered calls (src/accelerate/unanswered.ts). */
  private unanswered: SharedArrayBuffer | undefined;
  /** Every sandbox registered with expect/recover, until forget. */
  private readonly registered = new Map<string, Registered>();
  private nextKey = 1;
  /** Tokens announced and not yet seen with a listener: a restarted Worker is told them again. */
  private readonly tokens = new Map<string, { id: string; since: number }>();
  /** Worker starts since the daemon's, for unique `lend` ask numbers. */
  private generation = 0;
  private readonly restarts = new WindowCount(RESTART_WINDOW_MS);
  /** Restarted too often: every sandbox, new ones too, is served with CONTINUE only. */
  private degraded = false;
  private gaveUp = false;
  private readonly encoder = new TextEncoder();
  /** Host-socket connections made per sandbox since the daemon started. */
  readonly connections = new Map<string, number>();
  /** Sandboxes with a listener attached now (at least one enter step under the filter). */
  private readonly active = new Set<string>();
  /** Sandboxes whose egress policy the Worker was given: learned addresses are sent for these only. */
  private readonly egressSandboxes = new Set<string>();
  private refusalHook: RefusalHook | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly uid: number,
    /** The helper ledger: each listener's keeper is written down as its sandbox's helper. */
    private readonly helpers?: HelperLedger,
  ) {
    // One daemon at a time holds the state lock: a socket here is a killed daemon's.
    rmSync(socketPath, { force: true });
  }

  /** Connects the daemon's published ports (set once, by the daemon service). */
  setLender(lender: PortLender): void {
    this.lender = lender;
  }

  /** Where refused connects go (set once, by the daemon service: its refusal events). Without it they are only logged at debug level. */
  setRefusalHook(hook: RefusalHook): void {
    this.refusalHook = hook;
  }

  /**
   * burrow's resolver answered `address` for allow rule `allowIndex` of
   * sandbox `id`'s policy, reachable until `expiresAt` (ms epoch): the
   * supervisor lets connects to it out through host sockets until then. A
   * no-op for a sandbox whose policy the supervisor was not given (not
   * accelerated, or not registered yet: register with `expect`/`recover`
   * first, then feed what the resolver knows).
   */
  egressLearned(id: string, allowIndex: number, address: string, expiresAt: number): void {
    if (!this.egressSandboxes.has(id)) return;
    const r = this.registered.get(id);
    if (r) {
      const key = `${allowIndex} ${address}`;
      r.learned.set(key, { allowIndex, address, expiresAt: Math.max(expiresAt, r.learned.get(key)?.expiresAt ?? 0) });
      if (r.learned.size > 256) for (const [k, e] of r.learned) if (e.expiresAt <= Date.now()) r.learned.delete(k);
    }
    this.sendIfRunning({ op: "egress-learned", sandbox: id, allowIndex, address, expiresAt });
  }

  /** The Worker asks for a published port's host socket for a trapped bind. */
  private async lend(ask: number, id: string, port: number, family: 4 | 6): Promise<void> {
    const generation = this.generation;
    let lent: LentPort | null = null;
    try {
      lent = (await this.lender?.lend(id, port, family)) ?? null;
    } catch (e) {
      log.warn(`accelerate: cannot lend port ${port} of ${id.slice(0, 12)}: ${(e as Error).message}`);
    }
    if (lent && generation !== this.generation) {
      // The Worker that asked died meanwhile (its bind was answered CONTINUE by the next): the forwarder keeps the port.
      close(lent.fd);
      lent.resume();
      return;
    }
    if (!lent) {
      this.sendIfRunning({ op: "lent", ask, fd: -1 });
      return;
    }
    let inode: number;
    try {
      inode = socketInode(lent.fd);
    } catch {
      close(lent.fd);
      lent.resume();
      this.sendIfRunning({ op: "lent", ask, fd: -1 });
      return;
    }
    // Lent already: a second server's bind fails as it would inside (EADDRINUSE) while the first holds the socket.
    const inFlight = [...this.lending.values()].some((o) => o.inode === inode);
    const earlier = [...this.lent].find((o) => o.inode === inode);
    if (inFlight || (earlier && heldBy(this.lender?.processes(id) ?? [], inode))) {
      close(lent.fd);
      this.sendIfRunning({ op: "lent", ask, fd: -1, errno: EADDRINUSE });
      return;
    }
    if (earlier) this.lent.delete(earlier); // its server let go before the check: this bind takes the socket over, still paused
    this.lending.set(ask, { id, port: lent, inode });
    if (!this.sendIfRunning({ op: "lent", ask, fd: lent.fd })) {
      this.lending.delete(ask);
      close(lent.fd);
      lent.resume();
    }
  }

  /** After a daemon restart: a port's socket a server of `id` held, taken back paused (src/accelerate/held.ts): given to the forwarder once nobody holds it. */
  watchHeld(id: string, held: HeldPort): void {
    this.watch({ id, port: { fd: -1, hostPort: held.hostPort, resume: held.resume }, inode: held.inode });
  }

  private watch(out: LentOut): void {
    this.lent.add(out);
    this.takeBackTimer ??= setInterval(() => this.takeBack(), TAKE_BACK_MS);
    this.takeBackTimer.unref?.();
  }

  /** The Worker installed (or could not install) the socket lent for `ask`. */
  private borrowed(ask: number, ok: boolean): void {
    const out = this.lending.get(ask);
    this.lending.delete(ask);
    if (!out) return;
    if (!ok) {
      out.port.resume();
      return;
    }
    this.watch(out);
  }

  /** Gives the forwarder back every lent socket no process of its sandbox holds any more. */
  private takeBack(): void {
    for (const out of this.lent) {
      if (heldBy(this.lender?.processes(out.id) ?? [], out.inode)) continue;
      this.lent.delete(out);
      out.port.resume();
    }
    if (this.lent.size === 0) {
      clearInterval(this.takeBackTimer);
      this.takeBackTimer = undefined;
    }
  }

  /**
   * A token for one enter step of `id` (run, exec, restart): its listener is
   * adopted with `scope`. `egress`: the sandbox's egress policy, applied to
   * every connect the supervisor would hand a host socket (docs/egress.md
   * "--accelerate"); it is the sandbox's, so the latest given stays until
   * `forget`. A sandbox with a policy must pass it on its first registration.
   */
  expect(id: string, scope: Scope, egress?: AcceleratorEgress): Handoff {
    checkAccelerationSupport();
    this.ensureWorker();
    const token = randomBytes(16).toString("hex");
    const r = this.register(id, scope, egress);
    const now = Date.now();
    for (const [t, e] of this.tokens) if (now - e.since >= TOKEN_MS) this.tokens.delete(t);
    this.tokens.set(token, { id, since: now });
    this.send({ op: "expect", id, token, scope, ...(egress ? { egress } : {}), key: r.key, passthrough: r.passthrough });
    if (egress) this.egressSandboxes.add(id);
    return { socket: this.socketPath, token };
  }

  /** Records sandbox `id`'s scope and policy (the latest given), for a restarted Worker. */
  private register(id: string, scope: Scope, egress?: AcceleratorEgress): Registered {
    let r = this.registered.get(id);
    if (!r) {
      r = { key: this.nextKey++, scope, learned: new Map(), crashes: new WindowCount(RESTART_WINDOW_MS), passthrough: this.degraded };
      this.registered.set(id, r);
    }
    r.scope = scope;
    if (egress) {
      r.egress = egress;
      for (const l of egress.learned ?? []) r.learned.set(`${l.allowIndex} ${l.address}`, l);
    }
    return r;
  }

  /** Sandbox `id` ended: its listeners are closed (its processes are gone with it) and their keepers stopped. */
  async forget(id: string): Promise<void> {
    this.connections.delete(id);
    this.active.delete(id);
    this.egressSandboxes.delete(id);
    this.registered.delete(id);
    for (const [t, e] of this.tokens) if (e.id === id) this.tokens.delete(t);
    for (const out of this.lent) {
      if (out.id !== id) continue;
      this.lent.delete(out);
      out.port.resume();
    }
    if (this.worker) this.send({ op: "forget", id });
    this.keepAlive();
    const keepers = this.keepersOf(id);
    for (const k of keepers) {
      try {
        process.kill(k.pid, "SIGKILL");
      } catch {}
    }
    for (let i = 0; i < 100 && keepers.some((k) => startTimeOf(k.pid) === k.start); i++) await Bun.sleep(10);
  }

  /** The live keepers the ledger records for sandbox `id`. */
  private keepersOf(id: string): Array<{ pid: number; start: string }> {
    if (!this.helpers) return [];
    return this.helpers
      .all()
      .filter((r) => r.kind === "accel-keeper" && r.owner === `sandbox:${id}` && r.pid !== null && r.pidStart !== null && startTimeOf(r.pid) === r.pidStart)
      .map((r) => ({ pid: r.pid!, start: r.pidStart! }));
  }

  /**
   * After a daemon restart: takes back every listener of sandbox `s` from its
   * keepers (pidfd_getfd of their fd 3) and serves them again. Calls trapped
   * while no daemon ran have waited in the kernel; they are answered now,
   * under `egress` (as for `expect`), with the addresses read back from the
   * sandbox's sets in `egress.learned` (sent with the listener, so the calls
   * that waited are judged with them).
   */
  recover(id: string, scope: Scope, egress?: AcceleratorEgress): number {
    const r = this.register(id, scope, egress);
    return this.adoptFromKeepers(id, r, egress);
  }

  /** Sends the Worker a copy of every listener of `id` its keepers hold; how many. */
  private adoptFromKeepers(id: string, r: Registered, egress?: AcceleratorEgress): number {
    let n = 0;
    for (const k of this.keepersOf(id)) {
      let fd: number;
      try {
        fd = copyProcessFd(k.pid, 3);
      } catch (e) {
        log.warn(`accelerate: cannot take a listener of ${id.slice(0, 12)} back from keeper ${k.pid}: ${(e as Error).message}`);
        continue;
      }
      this.ensureWorker();
      this.send({ op: "adopt", id, fd, scope: r.scope, ...(egress ? { egress } : {}), key: r.key, passthrough: r.passthrough });
      if (egress) this.egressSandboxes.add(id);
      n++;
    }
    return n;
  }

  /** A keeper for a listener the Worker adopted (`keepFd`, ours to close). */
  private keep(id: string, keepFd: number): void {
    if (keepFd < 0) return;
    try {
      const track = this.helpers?.intend("accel-keeper", `sandbox:${id}`);
      const child = spawnListenerKeeper(keepFd, track?.env ?? {});
      if (child) track?.spawned(child.pid);
      else {
        track?.cancel();
        log.warn("accelerate: this build has no enter helper to keep listeners: a daemon crash would cut accelerated sandboxes' connects");
      }
    } catch (e) {
      log.warn(`accelerate: no keeper for a listener of ${id.slice(0, 12)}: ${(e as Error).message}`);
    } finally {
      close(keepFd);
    }
  }

  private refused(refusals: Extract<AcceleratorReport, { op: "refusals" }>["refusals"]): void {
    for (const r of refusals) {
      if (!this.refusalHook) {
        log.debug(
          `accelerate: ${r.sandbox.slice(0, 12)}: ${r.logOnly ? "would refuse" : "refused"} ${r.refusal.destination}:${r.refusal.port} (${r.refusal.reason})`,
        );
        continue;
      }
      try {
        this.refusalHook(r.sandbox, r.refusal, r.logOnly);
      } catch (e) {
        log.warn(`accelerate: recording a refusal of ${r.sandbox.slice(0, 12)}: ${(e as Error).message}`);
      }
    }
  }

  attached(id: string): boolean {
    return this.active.has(id);
  }

  close(): void {
    clearInterval(this.takeBackTimer);
    this.takeBackTimer = undefined;
    const worker = this.worker;
    if (!worker) {
      // Never started, or given up after too many deaths: only the handoff socket may be left.
      if (this.handoffFd >= 0) {
        close(this.handoffFd);
        this.handoffFd = -1;
        rmSync(this.socketPath, { force: true });
      }
      return;
    }
    this.worker = undefined;
    try {
      writeAll(this.controlFd, this.encoder.encode(`${JSON.stringify({ op: "exit" } satisfies AcceleratorCommand)}\n`));
    } catch {}
    const handoffFd = this.handoffFd;
    this.handoffFd = -1;
    worker.addEventListener("message", (e: MessageEvent<AcceleratorReport>) => {
      if (e.data.op !== "exited" && e.data.op !== "fatal") return;
      worker.terminate();
      close(handoffFd);
    });
    close(this.controlFd);
    this.controlFd = -1;
    rmSync(this.socketPath, { force: true });
  }

  /**
   * The Worker died (an exception, or it exited) while the daemon runs: one
   * line in the log, and a new Worker is given every listener again (from
   * their keepers), every token still expected, each sandbox's scope, policy
   * and learned addresses, and the calls the dead one had received and not
   * answered, to answer with what its table says is safe
   * (src/accelerate/unanswered.ts). A sandbox whose calls crashed it
   * CRASHES_PER_SANDBOX times within a minute is served without
   * acceleration from then on; more than RESTARTS_LIMIT restarts in a
   * minute and every sandbox is (the Worker then only answers CONTINUE), and
   * a death even so leaves the supervisor down (trapped calls wait for the
   * next daemon, which takes the listeners back from their keepers).
   */
  private died(worker: Worker, why: string): void {
    if (this.worker !== worker) return; // already handled, or closed on purpose
    this.worker = undefined;
    worker.terminate();
    close(this.controlFd);
    this.controlFd = -1;
    const left = this.unanswered ? readUnanswered(this.unanswered) : { calls: [], handling: 0 };
    const now = Date.now();
    const restarts = this.restarts.add(now);
    let blamed = "";
    for (const [id, r] of this.registered) {
      if (r.key !== left.handling) continue;
      const crashes = r.crashes.add(now);
      if (crashes >= CRASHES_PER_SANDBOX && !r.passthrough) {
        r.passthrough = true;
        blamed = `; ${id.slice(0, 12)} crashed it ${crashes} times within a minute and runs unaccelerated from now on`;
      }
    }
    if (restarts > RESTARTS_LIMIT && !this.degraded) {
      this.degraded = true;
      for (const r of this.registered.values()) r.passthrough = true;
      blamed += `; it died ${restarts} times within a minute: every sandbox runs unaccelerated from now on, until the daemon restarts`;
    } else if (restarts > RESTARTS_LIMIT) {
      this.gaveUp = true;
      log.error(
        `accelerate: the supervisor died (${why}) for the ${restarts}th time within a minute, serving every sandbox unaccelerated: not restarted; accelerated sandboxes' calls wait for the next daemon`,
      );
      return;
    }
    log.error(
      `accelerate: the supervisor died (${why}): restarting it (sandboxes: ${this.registered.size}, calls it left unanswered: ${left.calls.length})${blamed}`,
    );
    // Lent sockets the dead Worker never confirmed: the take-back watch gives each back to the forwarder once no process holds it.
    for (const out of this.lending.values()) this.watch(out);
    this.lending.clear();
    try {
      this.ensureWorker();
      for (const [id, r] of this.registered) {
        const egress = r.egress ? { ...r.egress, learned: [...r.learned.values()].filter((l) => l.expiresAt > now) } : undefined;
        this.adoptFromKeepers(id, r, egress);
      }
      for (const [token, e] of this.tokens) {
        const r = this.registered.get(e.id);
        if (!r || now - e.since >= TOKEN_MS) continue;
        this.send({ op: "expect", id: e.id, token, scope: r.scope, ...(r.egress ? { egress: r.egress } : {}), key: r.key, passthrough: r.passthrough });
      }
      if (left.calls.length) this.send({ op: "orphans", calls: left.calls.map((c) => ({ id: c.id.toString(), answer: c.answer })) });
    } catch (e) {
      log.error(`accelerate: the supervisor could not be restarted: ${(e as Error).message}`);
    }
  }

  /** send, unless the Worker is gone (the daemon is stopping); false then. */
  private sendIfRunning(m: AcceleratorCommand): boolean {
    if (!this.worker) return false;
    try {
      this.send(m);
      return true;
    } catch {
      return false;
    }
  }

  private send(m: AcceleratorCommand): void {
    // Lines are far below PIPE_BUF and few (one per enter step): a blocking write never waits long.
    writeAll(this.controlFd, this.encoder.encode(`${JSON.stringify(m)}\n`));
  }

  private keepAlive(): void {
    if (this.active.size > 0) this.worker?.ref();
    else this.worker?.unref();
  }

  private ensureWorker(): void {
    if (this.worker) return;
    if (this.gaveUp)
      throw new BurrowError(
        "--accelerate: the supervisor failed again and again since the daemon started; restart the daemon (burrow system service restart) or run without --accelerate",
      );
    const support = accelerationSupport();
    if (!support.ok) throw new BurrowError(`--accelerate needs ${support.missing}`, { kind: "bad-input" });
    if (this.handoffFd < 0) {
      // The runtime dir is the user's alone (checked at the daemon's start); a socket left by a dead daemon is replaced.
      rmSync(this.socketPath, { force: true });
      this.handoffFd = listenUnix(this.socketPath);
    }
    const handoffFd = this.handoffFd;
    const [readFd, writeFd] = pipe();
    setBlocking(writeFd);
    const worker = new Worker(workerUrl("accelerate/worker.ts"));
    worker.unref();
    worker.onmessage = (e: MessageEvent<AcceleratorReport>) => {
      const m = e.data;
      if (m.op === "counts") for (const [id, n] of Object.entries(m.counts)) this.connections.set(id, (this.connections.get(id) ?? 0) + n);
      else if (m.op === "attached") {
        if (m.token) this.tokens.delete(m.token);
        this.active.add(m.id);
        this.keepAlive();
        this.keep(m.id, m.keepFd);
      } else if (m.op === "lend") void this.lend(m.ask, m.id, m.port, m.family);
      else if (m.op === "borrowed") this.borrowed(m.ask, m.ok);
      else if (m.op === "refusals") this.refused(m.refusals);
      else if (m.op === "warn") log.warn(`accelerate: ${m.message}`);
      else if (m.op === "fatal") this.died(worker, m.message.split("\n")[0]!.replace(/^Error: /, ""));
    };
    worker.onerror = (e) => this.died(worker, e.message);
    worker.addEventListener("close", () => this.died(worker, "its thread exited"));
    this.unanswered = unansweredBuffer();
    const init: AcceleratorInit = {
      op: "init",
      controlFd: readFd,
      handoffFd,
      sizes: support.sizes,
      uid: this.uid,
      unanswered: this.unanswered,
      firstAsk: ++this.generation * 1_000_000_000 + 1,
      ...testCrash(),
    };
    worker.postMessage(init);
    this.worker = worker;
    this.controlFd = writeFd;
    this.keepAlive(); // a restarted Worker keeps the daemon's loop alive as the dead one did
  }
}

/** BURROW_TEST_ACCEL_CRASH=N (or exit:N) in the daemon's environment, for the restart test only: each Worker throws (exits) on its Nth connect. */
function testCrash(): Pick<AcceleratorInit, "crash"> {
  const m = /^(exit:)?([1-9]\d*)$/.exec(process.env.BURROW_TEST_ACCEL_CRASH ?? "");
  return m ? { crash: { at: Number(m[2]), exit: !!m[1] } } : {};
}
