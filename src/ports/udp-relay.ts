// UDP port forwarding: one host socket per published port and, per client
// address, a "flow": a connected UDP socket inside the sandbox's netns, so the
// service sees one peer per client and its replies find their way back.
//
// Runs on the daemon's main thread, in the host network namespace. The
// sandbox-side sockets live on the connector thread (Bun cannot wrap a UDP fd
// made elsewhere), so datagrams cross threads by message. A flow that carried
// nothing for `idleMs` is closed, like a NAT mapping (rootlessport: 60 s).
import type { udp } from "bun";
import { log } from "../log.ts";
import type { Connector } from "./connector.ts";

export type UdpTarget = { netnsPath: string; targetIp: string; targetPort: number };

/** Datagrams kept per flow while its sandbox socket is being made. */
const MAX_EARLY = 64;

type Flow = {
  readonly id: number;
  readonly address: string;
  readonly port: number;
  lastActive: number;
  open: boolean;
  early: Uint8Array[];
};

export type UdpListener = {
  readonly hostPort: number;
  readonly flows: number;
  close(): void;
};

let nextFlowId = 1;

/** Binds hostIp:hostPort and relays datagrams to the target. Rejects with Bun's bind error (with .code). */
export async function listenUdp(hostIp: string, hostPort: number, target: UdpTarget, connector: Connector, idleMs: number): Promise<UdpListener> {
  const flows = new Map<string, Flow>();
  let closed = false;

  const drop = (key: string, flow: Flow) => {
    if (flows.get(key) === flow) flows.delete(key);
    connector.udpClose(flow.id);
  };

  const openFlow = (key: string, address: string, port: number): Flow => {
    const flow: Flow = { id: nextFlowId++, address, port, lastActive: Date.now(), open: false, early: [] };
    flows.set(key, flow);
    connector
      .udpOpen(flow.id, target.netnsPath, target.targetIp, target.targetPort, {
        onData(data) {
          flow.lastActive = Date.now();
          host.send(data, flow.port, flow.address);
        },
        onLost() {
          if (flows.get(key) === flow) flows.delete(key);
        },
      })
      .then(
        () => {
          if (closed || flows.get(key) !== flow) {
            connector.udpClose(flow.id);
            return;
          }
          flow.open = true;
          for (const d of flow.early) connector.udpSend(flow.id, d);
          flow.early = [];
        },
        (e: unknown) => {
          log.debug(`UDP flow from ${address}:${port} to ${target.targetIp}:${target.targetPort}: ${e instanceof Error ? e.message : String(e)}`);
          if (flows.get(key) === flow) flows.delete(key);
        },
      );
    return flow;
  };

  const host: udp.Socket<"uint8array"> = await Bun.udpSocket({
    hostname: hostIp,
    port: hostPort,
    binaryType: "uint8array",
    socket: {
      data(_s, data, port, address) {
        if (closed) return;
        const key = `${address}#${port}`;
        const flow = flows.get(key) ?? openFlow(key, address, port);
        flow.lastActive = Date.now();
        if (flow.open) connector.udpSend(flow.id, data);
        else if (flow.early.length < MAX_EARLY) flow.early.push(data.slice());
      },
    },
  });

  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const [key, flow] of flows) if (now - flow.lastActive >= idleMs) drop(key, flow);
    },
    Math.max(50, Math.min(idleMs / 2, 10_000)),
  );
  sweep.unref();

  return {
    hostPort: host.port,
    get flows() {
      return flows.size;
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      for (const [key, flow] of flows) drop(key, flow);
      host.close();
    },
  };
}
