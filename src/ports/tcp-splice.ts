// TCP port forwarding through the splice Worker (src/ports/splice-worker.ts).
//
// Runs on the daemon's main thread, in the host network namespace: the
// listening socket is bound HERE (so bind errors come back synchronously and
// the port lives in the host netns), then handed to the worker by fd number.
// The worker accepts, connects inside the sandbox and moves the bytes.
import { close } from "../sys/ns.ts";
import { listenTcpSocket, pipe, SHUT_RDWR, shutdown, writeAll } from "../sys/splice.ts";
import { log } from "../log.ts";
import { COUNTER, COUNTERS, type SpliceCommand, type SpliceInit, type SpliceReport } from "./splice-protocol.ts";
import { workerPath } from "./worker-path.ts";

export type TcpTarget = { netnsPath: string; targetIp: string; targetPort: number };

export type TcpListener = {
  readonly hostPort: number;
  close(): void;
};

export class SpliceRelay {
  private worker: Worker | undefined;
  private controlFd = -1;
  private readonly counters = new Int32Array(new SharedArrayBuffer(4 * COUNTERS));
  private nextId = 1;
  private readonly open = new Map<number, TcpTarget & { fd: number }>();
  private readonly encoder = new TextEncoder();

  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Connections being relayed now, over all listeners. */
  get connections(): number {
    return Atomics.load(this.counters, COUNTER.active);
  }

  /**
   * Binds hostIp:hostPort in the host netns and has the worker relay its
   * connections. Throws SysError (with .code) when the bind fails.
   */
  listen(hostIp: string, hostPort: number, target: TcpTarget): TcpListener {
    const { fd, port } = listenTcpSocket(hostIp, hostPort);
    const id = this.nextId++;
    this.open.set(id, { ...target, fd });
    try {
      this.send({ op: "listen", id, fd, netnsPath: target.netnsPath, host: target.targetIp, port: target.targetPort });
    } catch (e) {
      this.open.delete(id);
      close(fd);
      throw e;
    }
    let closed = false;
    return {
      hostPort: port,
      close: () => {
        if (closed) return;
        closed = true;
        const entry = this.open.get(id);
        this.open.delete(id);
        if (!entry) return;
        // Stop accepting right now (new connections are refused from here
        // on); the worker closes the fd and the port's connections.
        shutdown(fd, SHUT_RDWR);
        if (this.worker) this.send({ op: "unlisten", id });
        else close(fd);
      },
    };
  }

  /** Stops the worker; every listener and connection is closed. */
  close(): void {
    const worker = this.worker;
    if (!worker) {
      for (const l of this.open.values()) close(l.fd);
      this.open.clear();
      return;
    }
    try {
      this.send({ op: "exit" });
    } catch {
      // the worker is gone already
    }
    this.open.clear();
    // The worker closes the listeners and connections, reports "exited" and
    // then is terminated (terminate() cannot interrupt its epoll_wait).
    this.worker = undefined;
    const controlFd = this.controlFd;
    this.controlFd = -1;
    worker.addEventListener("message", (e: MessageEvent<SpliceReport>) => {
      if (e.data.op === "exited" || e.data.op === "fatal") {
        worker.terminate();
        close(controlFd);
      }
    });
  }

  private send(m: SpliceCommand): void {
    this.ensureWorker();
    writeAll(this.controlFd, this.encoder.encode(`${JSON.stringify(m)}\n`));
  }

  private ensureWorker(): void {
    if (this.worker) return;
    const [readFd, writeFd] = pipe();
    const worker = new Worker(workerPath("ports/splice-worker", new URL("./splice-worker.ts", import.meta.url)));
    worker.unref();
    worker.onmessage = (e: MessageEvent<SpliceReport>) => {
      if (e.data.op === "fatal") this.failed(worker, new Error(e.data.message));
    };
    worker.onerror = (e) => this.failed(worker, new Error(e.message));
    const init: SpliceInit = { op: "init", controlFd: readFd, counters: this.counters.buffer as SharedArrayBuffer };
    worker.postMessage(init);
    this.worker = worker;
    this.controlFd = writeFd;
  }

  /** The worker died: start a new one and hand it every listener again (their connections are lost). */
  private failed(worker: Worker, e: Error): void {
    if (this.worker !== worker) return;
    log.error(`the port forwarding relay stopped, restarting it: ${e.message}`);
    this.worker = undefined;
    worker.terminate();
    close(this.controlFd);
    this.controlFd = -1;
    Atomics.store(this.counters, COUNTER.active, 0);
    for (const [id, l] of this.open) {
      this.send({ op: "listen", id, fd: l.fd, netnsPath: l.netnsPath, host: l.targetIp, port: l.targetPort });
    }
  }
}
