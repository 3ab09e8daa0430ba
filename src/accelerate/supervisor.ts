// Main-thread side of the accelerator Worker (src/accelerate/worker.ts):
// started on the first accelerated sandbox, it owns the handoff socket
// (RUNTIME_DIR/accelerate.sock, in the user's private runtime dir) and tells
// the Worker which tokens to expect. docs/accelerate.md has the design.
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
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
import type { AcceleratorCommand, AcceleratorInit, AcceleratorReport } from "./protocol.ts";
import type { Scope } from "./scope.ts";

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

export class Accelerator {
  private worker: Worker | undefined;
  private controlFd = -1;
  private readonly encoder = new TextEncoder();
  /** Host-socket connections made per sandbox since the daemon started. */
  readonly connections = new Map<string, number>();
  /** Sandboxes with a listener attached now (at least one enter step under the filter). */
  private readonly active = new Set<string>();

  constructor(
    private readonly socketPath: string,
    private readonly uid: number,
    /** The helper ledger: each listener's keeper is written down as its sandbox's helper. */
    private readonly helpers?: HelperLedger,
  ) {
    // One daemon at a time holds the state lock: a socket here is a killed daemon's.
    rmSync(socketPath, { force: true });
  }

  /** A token for one enter step of `id` (run, exec, restart): its listener is adopted with `scope`. */
  expect(id: string, scope: Scope): Handoff {
    checkAccelerationSupport();
    this.ensureWorker();
    const token = randomBytes(16).toString("hex");
    this.send({ op: "expect", id, token, scope });
    return { socket: this.socketPath, token };
  }

  /** Sandbox `id` ended: its listeners are closed (its processes are gone with it) and their keepers stopped. */
  async forget(id: string): Promise<void> {
    this.connections.delete(id);
    this.active.delete(id);
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
   * while no daemon ran have waited in the kernel; they are answered now.
   */
  recover(id: string, scope: Scope): number {
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
      this.send({ op: "adopt", id, fd, scope });
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

  attached(id: string): boolean {
    return this.active.has(id);
  }

  close(): void {
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    try {
      writeAll(this.controlFd, this.encoder.encode(`${JSON.stringify({ op: "exit" } satisfies AcceleratorCommand)}\n`));
    } catch {}
    worker.addEventListener("message", (e: MessageEvent<AcceleratorReport>) => {
      if (e.data.op === "exited" || e.data.op === "fatal") worker.terminate();
    });
    close(this.controlFd);
    this.controlFd = -1;
    rmSync(this.socketPath, { force: true });
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
    const support = accelerationSupport();
    if (!support.ok) throw new BurrowError(`--accelerate needs ${support.missing}`, { kind: "bad-input" });
    // The runtime dir is the user's alone (checked at the daemon's start); a socket left by a dead daemon is replaced.
    rmSync(this.socketPath, { force: true });
    const handoffFd = listenUnix(this.socketPath);
    const [readFd, writeFd] = pipe();
    setBlocking(writeFd);
    const worker = new Worker(workerUrl("accelerate/worker.ts"));
    worker.unref();
    worker.onmessage = (e: MessageEvent<AcceleratorReport>) => {
      const m = e.data;
      if (m.op === "counts") for (const [id, n] of Object.entries(m.counts)) this.connections.set(id, (this.connections.get(id) ?? 0) + n);
      else if (m.op === "attached") {
        this.active.add(m.id);
        this.keepAlive();
        this.keep(m.id, m.keepFd);
      } else if (m.op === "warn") log.warn(`accelerate: ${m.message}`);
      else if (m.op === "fatal") log.error(`accelerate: the supervisor stopped: ${m.message}`);
    };
    worker.onerror = (e) => log.error(`accelerate: the supervisor failed: ${e.message}`);
    const init: AcceleratorInit = { op: "init", controlFd: readFd, handoffFd, sizes: support.sizes, uid: this.uid };
    worker.postMessage(init);
    this.worker = worker;
    this.controlFd = writeFd;
  }
}
