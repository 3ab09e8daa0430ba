// Main-thread side of the connector Worker (src/ports/connector-worker.ts).
//
// Runs on the daemon's main thread, in the host network namespace: host
// sockets are bound HERE (so bind errors come back synchronously, as
// SysErrors with an errno code, and the port lives in the host netns), then
// handed to the worker by fd number. The worker is started on first use and
// shared by every port of every sandbox. It keeps the event loop alive while
// at least one port is open (a published port is a live service, and the host
// sockets are plain fds Bun does not know about), and not otherwise.
import { log } from "../log.ts";
import { close } from "../sys/ns.ts";
import { SysError } from "../sys/libc.ts";
import { bindUdpSocket, EAGAIN, listenTcpSocket, pipe, setBlocking, setPipeSize, SHUT_RDWR, shutdown, writeAll, writeNB } from "../sys/sockets.ts";
import {
  COUNTER,
  COUNTERS,
  type ConnectorCommand,
  type ConnectorInit,
  type ConnectorReport,
  type EgressFds,
  type SourceAddress,
  type Target,
} from "./connector-protocol.ts";
import { duplicateFd } from "../sys/seccomp.ts";
import { workerUrl } from "../workers.ts";

export type { EgressFds, SourceAddress, Target };

export type HostSocket = {
  readonly hostPort: number;
  /** TCP: settles once the worker serves the port and knows whether its clients go in with their own address. */
  readonly sourceAddress: Promise<SourceAddress>;
  /** Stops serving the port and drops its connections or flows. Idempotent. */
  close(): void;
  /**
   * TCP, for --accelerate: stops accepting on the host socket (its relayed
   * connections go on) and gives a close-on-exec duplicate of it, ours to
   * close; `resume` accepts on it again. Null once the port is closed.
   */
  lend?(): Promise<{ fd: number; resume(): void } | null>;
  /** Set when the port's socket was taken from a sandboxed server that holds it (`held`): paused until `resume`. */
  held?: { resume(): void };
};

type Listen = Extract<ConnectorCommand, { op: "listen-tcp" | "listen-udp" }>;

export class Connector {
  private worker: Worker | undefined;
  /** Write end of the worker's command pipe, and the read end the worker owns. */
  private controlFd = -1;
  private controlReadFd = -1;
  /** Command lines the pipe had no room for yet (only while the worker starts up under a burst). */
  private backlog: Uint8Array[] = [];
  private backlogTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly counters = new Int32Array(new SharedArrayBuffer(4 * COUNTERS));
  private nextId = 1;
  /** Every listener the worker serves, to hand them to a restarted worker. */
  private readonly open = new Map<number, Listen>();
  private readonly encoder = new TextEncoder();
  /** Listeners lent out (by id): a restarted worker is told to pause them again. */
  private readonly paused = new Set<number>();
  /** pause commands waiting for the worker's "paused" (by id). */
  private readonly pauses = new Map<number, Array<() => void>>();
  /** listen-tcp commands waiting for the worker's "listening" (by id; a restarted worker answers the same id). */
  private readonly answers = new Map<number, (a: SourceAddress) => void>();
  /** egress-sockets commands waiting for their fds (by id). */
  private readonly egressAnswers = new Map<number, { resolve(fds: EgressFds): void; reject(e: Error): void }>();

  get running(): boolean {
    return this.worker !== undefined;
  }

  /** TCP connections being relayed now, over all ports. */
  get tcpConnections(): number {
    return Atomics.load(this.counters, COUNTER.tcpActive);
  }

  /** UDP client flows mapped now, over all ports. */
  get udpFlows(): number {
    return Atomics.load(this.counters, COUNTER.udpFlows);
  }

  /** TCP connections that went into their sandbox with the client's own address, since start. */
  get tcpClientAddress(): number {
    return Atomics.load(this.counters, COUNTER.tcpClientAddress);
  }

  /** Garbage collections the worker ran on its own since it started. */
  get collections(): number {
    return Atomics.load(this.counters, COUNTER.collections);
  }

  /** Binds hostIp:hostPort/tcp in the host netns and relays its connections to the target. Throws SysError when the bind fails. */
  listenTcp(hostIp: string, hostPort: number, target: Target, keepClientAddress = false, held?: () => number | null): HostSocket {
    let fd: number;
    let port: number;
    let paused = false;
    try {
      ({ fd, port } = listenTcpSocket(hostIp, hostPort));
    } catch (e) {
      // --accelerate after a daemon restart: a sandboxed server holds the port's socket; served again (paused) once it lets go.
      const taken = e instanceof SysError && e.code === "EADDRINUSE" ? held?.() : null;
      if (taken === null || taken === undefined) throw e;
      fd = taken;
      port = hostPort;
      paused = true;
    }
    const id = this.nextId++;
    // Only a port that asks waits for the worker (which may be starting up).
    const sourceAddress = keepClientAddress
      ? new Promise<SourceAddress>((resolve) => this.answers.set(id, resolve))
      : Promise.resolve<SourceAddress>({ sourceAddress: "forwarder" });
    // shutdown() stops a listening socket at once: new connections are
    // refused even before the worker has read the unlisten command.
    try {
      const socket = this.serve({ op: "listen-tcp", id, fd, keepClientAddress, ...target }, port, sourceAddress, () => shutdown(fd, SHUT_RDWR));
      if (paused) {
        this.paused.add(id);
        this.send({ op: "pause", id });
      }
      return { ...socket, lend: () => this.lend(id, fd), ...(paused ? { held: { resume: () => this.resume(id) } } : {}) };
    } catch (e) {
      this.answers.delete(id);
      throw e;
    }
  }

  /** Binds hostIp:hostPort/udp in the host netns and relays datagrams per client. Throws SysError when the bind fails. */
  listenUdp(hostIp: string, hostPort: number, target: Target, idleMs: number): HostSocket {
    const { fd, port } = bindUdpSocket(hostIp, hostPort);
    return this.serve({ op: "listen-udp", id: this.nextId++, fd, idleMs, ...target }, port, Promise.resolve({ sourceAddress: "forwarder" }), () => {});
  }

  /**
   * A sandbox's egress sockets (docs/egress.md), made by the worker inside
   * the netns pinned at `netnsPath`: the resolver's UDP and TCP sockets on
   * `resolver`:53 and two netfilter netlink sockets. Ours to close.
   */
  egressSockets(netnsPath: string, resolver: string): Promise<EgressFds> {
    const id = this.nextId++;
    return new Promise<EgressFds>((resolve, reject) => {
      this.egressAnswers.set(id, { resolve, reject });
      try {
        this.send({ op: "egress-sockets", id, netnsPath, resolver });
      } catch (e) {
        this.egressAnswers.delete(id);
        reject(e);
      }
    });
  }

  private answerEgress(m: Extract<ConnectorReport, { op: "egress-sockets" }>): void {
    const waiting = this.egressAnswers.get(m.id);
    this.egressAnswers.delete(m.id);
    if ("fds" in m) {
      if (waiting) waiting.resolve(m.fds);
      else for (const fd of Object.values(m.fds)) close(fd); // nobody waits any more (the connector was closed)
    } else waiting?.reject(new Error(m.error));
  }

  /** The worker is gone: an egress-sockets command it had not answered is failed (the caller rolls back). */
  private failEgress(why: string): void {
    for (const w of this.egressAnswers.values()) w.reject(new Error(why));
    this.egressAnswers.clear();
  }

  /** See HostSocket.lend. */
  private async lend(id: number, fd: number): Promise<{ fd: number; resume(): void } | null> {
    if (!this.open.has(id)) return null;
    const wasPaused = this.paused.has(id);
    this.paused.add(id);
    try {
      await new Promise<void>((resolve) => {
        const waiting = this.pauses.get(id) ?? [];
        waiting.push(resolve);
        this.pauses.set(id, waiting);
        this.send({ op: "pause", id });
      });
    } catch (e) {
      // The worker never got the pause: nothing to resume there.
      this.pauses.delete(id);
      if (!wasPaused) this.paused.delete(id);
      throw e;
    }
    // Closed while the worker paused it: the fd number may be gone or reused.
    if (!this.open.has(id)) return null;
    const copy = duplicateFd(fd);
    return {
      fd: copy,
      resume: () => this.resume(id),
    };
  }

  private resume(id: number): void {
    if (!this.paused.delete(id) || !this.open.has(id)) return;
    this.send({ op: "resume", id });
  }

  private settle(id: number, answer: SourceAddress): void {
    this.answers.get(id)?.(answer);
    this.answers.delete(id);
  }

  /** Starts the worker ahead of the first listener (it takes a few ms), so publishing need not wait for it. */
  warm(): void {
    this.ensureWorker();
    this.keepAlive();
  }

  /** Stops the worker; every listener, connection and flow is closed. */
  close(): void {
    for (const id of [...this.answers.keys()]) this.settle(id, { sourceAddress: "forwarder" });
    for (const id of [...this.pauses.keys()]) this.donePausing(id);
    this.paused.clear();
    this.failEgress("the connector was closed");
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) {
      for (const l of this.open.values()) close(l.fd);
      this.open.clear();
      return;
    }
    this.open.clear();
    const controlFd = this.controlFd;
    this.controlFd = -1;
    this.controlReadFd = -1; // the worker closes it on its way out
    // Everything still queued (listeners whose fds only the worker will
    // close), then "exit": waiting for pipe room here is fine, the worker is
    // draining it.
    clearTimeout(this.backlogTimer);
    this.backlogTimer = undefined;
    setBlocking(controlFd);
    for (const line of this.backlog) writeAll(controlFd, line);
    this.backlog = [];
    writeAll(controlFd, this.encoder.encode(`${JSON.stringify({ op: "exit" } satisfies ConnectorCommand)}\n`));
    // The worker closes everything, reports "exited" and is then terminated
    // (terminate() alone cannot interrupt its epoll_wait).
    worker.addEventListener("message", (e: MessageEvent<ConnectorReport>) => {
      if (e.data.op === "exited" || e.data.op === "fatal") {
        worker.terminate();
        close(controlFd);
      }
    });
  }

  private serve(m: Listen, port: number, sourceAddress: Promise<SourceAddress>, stop: () => void): HostSocket {
    this.open.set(m.id, m);
    try {
      this.send(m);
    } catch (e) {
      this.open.delete(m.id);
      close(m.fd);
      this.keepAlive();
      throw e;
    }
    this.keepAlive();
    let closed = false;
    return {
      hostPort: port,
      sourceAddress,
      close: () => {
        if (closed) return;
        closed = true;
        this.settle(m.id, { sourceAddress: "forwarder" });
        this.paused.delete(m.id);
        this.donePausing(m.id);
        if (!this.open.delete(m.id)) return; // the whole connector was closed
        stop();
        // The worker owns the fd from here: it closes it with the port's connections.
        this.send({ op: "unlisten", id: m.id });
        this.keepAlive();
      },
    };
  }

  private donePausing(id: number): void {
    for (const resolve of this.pauses.get(id) ?? []) resolve();
    this.pauses.delete(id);
  }

  private keepAlive(): void {
    if (this.open.size > 0) this.worker?.ref();
    else this.worker?.unref();
  }

  /** Queues a command line for the worker (starting it if needed). */
  private send(m: ConnectorCommand): void {
    this.ensureWorker();
    const line = this.encoder.encode(`${JSON.stringify(m)}\n`);
    // Lines are far below PIPE_BUF, so each write is all or nothing.
    if (this.backlog.length === 0 && this.writeLine(line)) return;
    this.backlog.push(line);
    this.flushLater();
  }

  private writeLine(line: Uint8Array): boolean {
    const n = writeNB(this.controlFd, line, line.byteLength);
    if (n === line.byteLength) return true;
    if (n === -EAGAIN) return false;
    throw new SysError("write", -n, "connector command pipe");
  }

  private flushLater(): void {
    this.backlogTimer ??= setTimeout(() => {
      this.backlogTimer = undefined;
      while (this.backlog.length > 0 && this.controlFd >= 0 && this.writeLine(this.backlog[0]!)) this.backlog.shift();
      if (this.backlog.length > 0 && this.controlFd >= 0) this.flushLater();
    }, 5);
  }

  private ensureWorker(): void {
    if (this.worker) return;
    const [readFd, writeFd] = pipe();
    setPipeSize(writeFd, 1 << 20); // room for a daemon restoring many ports at once; best effort
    const worker = new Worker(workerUrl("ports/connector-worker.ts"));
    worker.unref();
    worker.onmessage = (e: MessageEvent<ConnectorReport>) => {
      if (e.data.op === "listening") {
        const { op: _op, id, ...answer } = e.data;
        this.settle(id, answer);
      } else if (e.data.op === "paused") this.donePausing(e.data.id);
      else if (e.data.op === "egress-sockets") this.answerEgress(e.data);
      else if (e.data.op === "fatal") this.restart(worker, new Error(e.data.message));
      else if (e.data.op === "error") log.error(`port forwarding: ${e.data.message}`);
    };
    worker.onerror = (e) => this.restart(worker, new Error(e.message));
    const init: ConnectorInit = { op: "init", controlFd: readFd, counters: this.counters.buffer as SharedArrayBuffer };
    worker.postMessage(init);
    this.worker = worker;
    this.controlFd = writeFd;
    this.controlReadFd = readFd;
  }

  /** The worker died: start a new one and hand it every listener again (their connections are lost). */
  private restart(worker: Worker, e: Error): void {
    if (this.worker !== worker) return;
    log.error(`the port forwarding connector stopped, restarting it: ${e.message}`);
    this.failEgress(`the connector thread stopped: ${e.message}`);
    this.worker = undefined;
    worker.terminate();
    close(this.controlFd);
    close(this.controlReadFd);
    this.controlFd = -1;
    this.controlReadFd = -1;
    this.backlog = []; // the listeners are all sent again below
    Atomics.store(this.counters, COUNTER.tcpActive, 0);
    Atomics.store(this.counters, COUNTER.udpFlows, 0);
    for (const m of this.open.values()) this.send(m);
    for (const id of this.paused) this.send({ op: "pause", id });
    this.keepAlive();
  }
}

let daemonWide: Connector | undefined;
/**
 * The daemon's one connector: published ports (src/ports/builtin/driver.ts)
 * and egress sockets (src/daemon/egress.ts) share its Worker thread.
 */
export function daemonConnector(): Connector {
  daemonWide ??= new Connector();
  return daemonWide;
}
