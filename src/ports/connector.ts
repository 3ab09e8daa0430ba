// Main-thread side of the connector Worker (src/ports/connector-worker.ts).
//
// Runs on the daemon's main thread, in the host network namespace. The worker
// is started on first use and shared by every port of every sandbox (a Worker
// costs ≈ 6.6 MB RSS). It is unref'd: listeners keep the daemon alive, not it.
// Replies are dispatched by request id from one onmessage handler.
import type { ConnectorErrorInfo, ConnectorReply, ConnectorRequest } from "./connector-protocol.ts";
import { workerPath } from "./worker-path.ts";

/** An error reported by the connector, with the errno name when there was one. */
export class ConnectorError extends Error {
  readonly code: string;
  constructor(info: ConnectorErrorInfo) {
    super(info.message);
    this.name = "ConnectorError";
    this.code = info.code;
  }
}

type Waiter = { resolve: (reply: ConnectorReply) => void; reject: (e: Error) => void };
type FlowSink = { onData: (data: Uint8Array) => void; onLost: () => void };


export class Connector {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private readonly flows = new Map<number, FlowSink>();

  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Starts a TCP connection to host:port inside the netns pinned at netnsPath; resolves to its fd. */
  async connect(netnsPath: string, host: string, port: number): Promise<number> {
    const reply = await this.request({ op: "connect", id: 0, netnsPath, host, port });
    if (reply.op !== "connected") throw new Error(`connector: unexpected reply ${reply.op}`);
    return reply.fd;
  }

  /** Opens UDP flow `flow` to host:port inside the netns; datagrams back arrive at sink.onData. */
  async udpOpen(flow: number, netnsPath: string, host: string, port: number, sink: FlowSink): Promise<void> {
    this.flows.set(flow, sink);
    try {
      await this.request({ op: "udp-open", id: 0, flow, netnsPath, host, port });
    } catch (e) {
      this.flows.delete(flow);
      throw e;
    }
  }

  udpSend(flow: number, data: Uint8Array): void {
    if (this.worker && this.flows.has(flow)) this.post({ op: "udp-send", flow, data });
  }

  udpClose(flow: number): void {
    if (!this.flows.delete(flow)) return;
    if (this.worker) this.post({ op: "udp-close", flow });
  }

  /** Stops the worker; pending requests fail, UDP flows are reported lost. */
  close(): void {
    this.reset(new Error("port forwarder closed"));
  }

  private request(m: ConnectorRequest & { id: number }): Promise<ConnectorReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.post({ ...m, id });
    });
  }

  private post(m: ConnectorRequest): void {
    this.ensureWorker().postMessage(m);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(workerPath("ports/connector-worker", new URL("./connector-worker.ts", import.meta.url)));
    worker.unref();
    worker.onmessage = (event: MessageEvent<ConnectorReply>) => this.dispatch(event.data);
    worker.onerror = (event) => this.reset(new Error(`connector worker failed: ${event.message}`));
    worker.addEventListener("close", () => {
      if (this.worker === worker) this.reset(new Error("connector worker exited"));
    });
    this.worker = worker;
    return worker;
  }

  private dispatch(m: ConnectorReply): void {
    switch (m.op) {
      case "udp-recv":
        this.flows.get(m.flow)?.onData(m.data);
        return;
      case "fatal":
        this.reset(new ConnectorError(m.error));
        return;
      default: {
        const waiter = this.waiting.get(m.id);
        if (!waiter) return;
        this.waiting.delete(m.id);
        if (m.op === "failed") waiter.reject(new ConnectorError(m.error));
        else waiter.resolve(m);
      }
    }
  }

  private reset(reason: Error): void {
    const worker = this.worker;
    this.worker = undefined;
    worker?.terminate();
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(reason);
    const flows = [...this.flows.values()];
    this.flows.clear();
    for (const f of flows) f.onLost();
  }
}
