// Main-thread side of the accelerator Worker (src/accelerate/worker.ts):
// started on the first accelerated sandbox, it owns the handoff socket
// (RUNTIME_DIR/accelerate.sock, in the user's private runtime dir) and tells
// the Worker which tokens to expect. docs/accelerate.md has the design.
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { BurrowError } from "../errors.ts";
import { log } from "../log.ts";
import { close } from "../sys/ns.ts";
import { accelerationSupport } from "../sys/seccomp.ts";
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

  /** Sandbox `id` ended: its listeners are closed (its processes are gone with it). */
  forget(id: string): void {
    this.connections.delete(id);
    this.active.delete(id);
    if (this.worker) this.send({ op: "forget", id });
    this.keepAlive();
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
