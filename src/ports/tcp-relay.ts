// TCP port forwarding: a listener on the host and, per accepted connection, a
// relay to a socket that the connector made inside the sandbox's netns.
//
// Runs on the daemon's main thread, in the host network namespace. Bytes are
// copied by Bun's event loop with backpressure: Socket.write() is unbuffered
// and returns how much the kernel took, so the rest waits in a small queue,
// the sending side is paused, and `drain` flushes and resumes it. Half-close
// is relayed: a FIN from one side becomes shutdown(SHUT_WR) on the other once
// everything before it has been written.
import type { Socket, TCPSocketListener } from "bun";
import { close as closeFd } from "../sys/ns.ts";
import { log } from "../log.ts";
import type { Connector } from "./connector.ts";

/** Where a listener's connections go. */
export type TcpTarget = { netnsPath: string; targetIp: string; targetPort: number };

type Chunk = { buf: Uint8Array; off: number };

/** One direction of a relay: bytes read from `from` waiting to be written to `to`. */
class Pipe {
  readonly queue: Chunk[] = [];
  /** `from` sent FIN (or closed): nothing more will be queued. */
  eof = false;
  /** We shut down `to`'s write side (after flushing the queue). */
  shut = false;
}

/** A forwarded connection: the host-side client and the sandbox-side upstream. */
export class Relay {
  upstream: Socket<Relay> | undefined;
  readonly up = new Pipe(); // client → upstream
  readonly down = new Pipe(); // upstream → client
  clientClosed = false;
  upstreamClosed = false;
  constructor(
    readonly client: Socket<Relay>,
    private readonly onDone: (r: Relay) => void,
  ) {}

  /** Ends both sides abruptly (port closed, forwarder closed). */
  abort(): void {
    this.client.terminate();
    this.upstream?.terminate();
    this.finish();
  }

  private done = false;
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.onDone(this);
  }
}

/** Writes as much of `pipe`'s queue to `to` as the kernel takes; true when the queue is empty. */
function flush(pipe: Pipe, to: Socket<Relay>): boolean {
  const q = pipe.queue;
  while (q.length > 0) {
    const c = q[0]!;
    const len = c.buf.byteLength - c.off;
    const n = to.write(c.buf, c.off, len);
    if (n < 0) {
      q.length = 0; // `to` is closed: its close handler tidies up
      return true;
    }
    if (n < len) {
      c.off += n;
      return false;
    }
    q.shift();
  }
  return true;
}

/** Relays a chunk read from `from` to `to` (or queues it); pauses `from` when `to` is full. */
function forward(pipe: Pipe, from: Socket<Relay>, to: Socket<Relay> | undefined, data: Uint8Array): void {
  if (to === undefined || pipe.queue.length > 0) {
    // Upstream still being connected, or `to` is backed up: keep the bytes.
    // Bun may deliver a chunk or two after pause(); the queue absorbs them.
    pipe.queue.push({ buf: data, off: 0 });
    from.pause();
    return;
  }
  const n = to.write(data);
  if (n >= 0 && n < data.byteLength) {
    pipe.queue.push({ buf: data, off: n });
    from.pause();
  }
}

/** After `to` drained (or became usable): flush, resume `from`, pass on a pending FIN. */
function drained(relay: Relay, pipe: Pipe, from: Socket<Relay>, fromClosed: boolean, to: Socket<Relay>): void {
  if (!flush(pipe, to)) return;
  if (!pipe.eof) {
    from.resume();
    return;
  }
  if (!pipe.shut) {
    pipe.shut = true;
    // The source is gone for good: nothing can travel the other way either.
    if (fromClosed) to.close();
    else to.shutdown();
  }
  settle(relay);
}

/** Closes both sockets once both directions are finished. */
function settle(relay: Relay): void {
  const { up, down } = relay;
  if (up.shut && down.shut) {
    relay.client.close();
    relay.upstream?.close();
  }
}

/** One side closed: the other side gets what is queued for it, then is closed too. */
function sideClosed(relay: Relay, side: "client" | "upstream", error: Error | undefined): void {
  const from = side === "client" ? relay.client : relay.upstream;
  const to = side === "client" ? relay.upstream : relay.client;
  const pipe = side === "client" ? relay.up : relay.down;
  const back = side === "client" ? relay.down : relay.up;
  if (side === "client") relay.clientClosed = true;
  else relay.upstreamClosed = true;
  pipe.eof = true;
  back.queue.length = 0; // nowhere to deliver it anymore
  back.eof = true;
  back.shut = true;
  if (relay.clientClosed && (relay.upstreamClosed || relay.upstream === undefined)) {
    relay.finish();
    return;
  }
  if (to === undefined || from === undefined) return; // upstream not connected yet: its setup sees clientClosed
  if (error) {
    // Propagate a reset as a reset (like a direct connection would see it).
    to.terminate();
    return;
  }
  drained(relay, pipe, from, true, to);
}

// `open` for clients is added by listenTcp, which knows the target.
const clientHandlers = {
  data(client: Socket<Relay>, data: Uint8Array) {
    const r = client.data;
    if (r.upstreamClosed) return;
    forward(r.up, client, r.upstream, data);
  },
  drain(client: Socket<Relay>) {
    const r = client.data;
    if (r.upstream) drained(r, r.down, r.upstream, r.upstreamClosed, client);
  },
  end(client: Socket<Relay>) {
    const r = client.data;
    r.up.eof = true;
    if (r.upstream && !r.upstreamClosed) drained(r, r.up, client, false, r.upstream);
  },
  close(client: Socket<Relay>, error?: Error) {
    sideClosed(client.data, "client", error);
  },
  error(client: Socket<Relay>, error: Error) {
    log.debug(`forwarded connection from ${client.remoteAddress}:${client.remotePort}: ${error.message}`);
  },
};

const upstreamHandlers = {
  open(upstream: Socket<Relay>) {
    const r = upstream.data;
    r.upstream = upstream;
    upstream.setNoDelay(true);
    if (r.clientClosed) {
      upstream.terminate();
      return;
    }
    // Whatever the client sent while we were connecting, then normal flow.
    drained(r, r.up, r.client, false, upstream);
  },
  data(upstream: Socket<Relay>, data: Uint8Array) {
    const r = upstream.data;
    if (r.clientClosed) return;
    forward(r.down, upstream, r.client, data);
  },
  drain(upstream: Socket<Relay>) {
    const r = upstream.data;
    drained(r, r.up, r.client, r.clientClosed, upstream);
  },
  end(upstream: Socket<Relay>) {
    const r = upstream.data;
    r.down.eof = true;
    if (!r.clientClosed) drained(r, r.down, upstream, false, r.client);
  },
  close(upstream: Socket<Relay>, error?: Error) {
    sideClosed(upstream.data, "upstream", error);
  },
  error(upstream: Socket<Relay>, error: Error) {
    log.debug(`forwarded connection to the sandbox: ${error.message}`);
  },
};

export type TcpListener = {
  readonly hostPort: number;
  readonly connections: number;
  close(): void;
};

/**
 * Listens on hostIp:hostPort (host netns) and relays every connection to the
 * target inside the sandbox. Throws Bun's listen error (with .code) as is;
 * the caller turns it into a BurrowError.
 */
export function listenTcp(hostIp: string, hostPort: number, target: TcpTarget, connector: Connector): TcpListener {
  const relays = new Set<Relay>();
  const onDone = (r: Relay) => relays.delete(r);

  const accept = (client: Socket<Relay>) => {
    const relay = new Relay(client, onDone);
    client.data = relay;
    relays.add(relay);
    client.setNoDelay(true);
    client.pause(); // until the upstream exists: the kernel holds the client's bytes meanwhile
    connector.connect(target.netnsPath, target.targetIp, target.targetPort).then(
      (fd) => {
        if (relay.clientClosed) {
          closeFd(fd);
          relay.finish();
          return;
        }
        Bun.connect({ fd, allowHalfOpen: true, data: relay, socket: upstreamHandlers }).catch((e: unknown) => {
          closeFd(fd);
          log.debug(`wrapping the sandbox socket failed: ${e instanceof Error ? e.message : String(e)}`);
          relay.upstreamClosed = true;
          client.close();
        });
      },
      (e: unknown) => {
        // Refused at once, netns gone, connector down: the client just sees the
        // connection closed, as with rootlessport.
        log.debug(`connecting to ${target.targetIp}:${target.targetPort} in ${target.netnsPath}: ${e instanceof Error ? e.message : String(e)}`);
        relay.upstreamClosed = true;
        client.close();
      },
    );
  };

  const listener: TCPSocketListener<Relay> = Bun.listen<Relay>({
    hostname: hostIp,
    port: hostPort,
    exclusive: true,
    allowHalfOpen: true,
    socket: { ...clientHandlers, open: accept },
  });

  return {
    hostPort: listener.port,
    get connections() {
      return relays.size;
    },
    close() {
      listener.stop(false);
      for (const r of [...relays]) r.abort();
    },
  };
}
