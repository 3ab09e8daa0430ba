// The connector: ONE Worker thread for every sandbox's published ports.
//
// Network namespace: this thread hops. For each job it setns()s into the
// sandbox's netns (by opening the pin), makes the socket there, and leaves
// again before any await (DESIGN.md "Hard facts about Bun"). A socket belongs
// to the netns it was created in for its whole life, so sockets made here keep
// working after the thread has moved on.
//
// Between jobs the thread parks in an empty netns (src/ports/netns-hop.ts).
//
// TCP: the socket is created non-blocking and its fd is posted back; the main
// thread wraps it with Bun.connect({ fd }). UDP: Bun cannot wrap a datagram fd,
// so the flow's Bun.udpSocket lives on this thread and datagrams travel by
// message (UDP forwarding is latency-, not throughput-bound).
import { SOCK_STREAM } from "../sys/net.ts";
import { connectStart } from "../sys/netio.ts";
import type { ConnectorErrorInfo, ConnectorReply, ConnectorRequest } from "./connector-protocol.ts";
import { createHopper } from "./netns-hop.ts";

declare const self: Worker;

const post = (m: ConnectorReply) => self.postMessage(m);

function errorInfo(e: unknown): ConnectorErrorInfo {
  const code = typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "EUNKNOWN";
  return { code, message: e instanceof Error ? e.message : String(e) };
}

const { inNetns } = createHopper((e) => {
  post({ op: "fatal", error: errorInfo(e) });
  process.exit(1);
});

type Flow = { socket?: Bun.udp.ConnectedSocket<"uint8array">; closed: boolean };
const flows = new Map<number, Flow>();

async function udpOpen(m: Extract<ConnectorRequest, { op: "udp-open" }>): Promise<void> {
  // Bun.udpSocket creates and connects the socket synchronously; only the
  // returned promise settles later, when this thread is already parked.
  const opening = inNetns(m.netnsPath, () =>
    Bun.udpSocket({
      binaryType: "uint8array",
      connect: { hostname: m.host, port: m.port },
      socket: {
        data(_s, data) {
          post({ op: "udp-recv", flow: m.flow, data });
        },
        error() {
          // ICMP port unreachable and the like: UDP has no connection to close;
          // the flow expires when idle.
        },
      },
    }),
  );
  const flow: Flow = { closed: false };
  flows.set(m.flow, flow);
  try {
    const socket = await opening;
    if (flow.closed) {
      socket.close();
      return;
    }
    flow.socket = socket;
    post({ op: "udp-opened", id: m.id });
  } catch (e) {
    flows.delete(m.flow);
    post({ op: "failed", id: m.id, error: errorInfo(e) });
  }
}

self.onmessage = (event: MessageEvent<ConnectorRequest>) => {
  const m = event.data;
  switch (m.op) {
    case "connect":
      try {
        const fd = inNetns(m.netnsPath, () => connectStart(m.host, m.port, SOCK_STREAM));
        post({ op: "connected", id: m.id, fd });
      } catch (e) {
        post({ op: "failed", id: m.id, error: errorInfo(e) });
      }
      break;
    case "udp-open":
      udpOpen(m).catch((e) => post({ op: "failed", id: m.id, error: errorInfo(e) }));
      break;
    case "udp-send":
      flows.get(m.flow)?.socket?.send(m.data);
      break;
    case "udp-close": {
      const flow = flows.get(m.flow);
      if (flow) {
        flow.closed = true;
        flow.socket?.close();
        flows.delete(m.flow);
      }
      break;
    }
  }
};
