// The builtin port forwarder: burrow's equivalent of podman's rootlessport /
// RootlessKit "builtin" port driver, but inside the daemon, with no process
// per sandbox.
//
// Runs on the daemon's MAIN thread, which stays in the host network namespace:
// host sockets are bound here. One shared connector Worker
// (src/ports/connector-worker.ts) serves them all: it hops into the sandbox's
// pinned netns to make the sandbox-side sockets, and moves TCP bytes with
// splice(2) and UDP datagrams per client flow, so no byte crosses into JS or
// onto the daemon's main thread.
//
// The target is the sandbox's own address (e.g. 10.0.2.100), never loopback:
// forwarding to 127.0.0.1 inside the sandbox would expose services that
// listen only on the sandbox's loopback (podman CVE-2021-20199).
import { isIP } from "../ip-syntax.ts";
import { BurrowError, messageOf } from "../errors.ts";
import { SysError } from "../sys/libc.ts";
import { Connector, type HostSocket, type SourceAddress } from "./connector.ts";
import { bindError, forwarderListenAddress, listenAddress } from "./host-port.ts";
import { isIPv6Loopback } from "../port-dnat.ts";
import { quote } from "../quote.ts";

export { bindError, listenAddress };
export type { SourceAddress };

export type PortProtocol = "tcp" | "udp";

export type ForwardSpec = {
  /** Host address to listen on; "" means all addresses ("::", IPv4 too, where the host has IPv6; else 0.0.0.0). "::" and "::1" work too. */
  hostIp: string;
  /** Host port; 0 picks a free one (see ForwardedPort.hostPort). */
  hostPort: number;
  protocol: PortProtocol;
  /** The sandbox's pinned netns file, e.g. /run/burrow/netns/<id>. */
  netnsPath: string;
  /** The sandbox's own address in its netns; loopback is refused. */
  targetIp: string;
  /** The sandbox has IPv6: IPv6 clients are forwarded to its own global IPv6 address (IPv4 while it has none yet). */
  targetIPv6?: boolean;
  /** Its IPv6 address where the backend fixed it (bridge networks); absent: looked up in its netns per connection. */
  targetIp6?: string;
  targetPort: number;
  /** TCP: the sandbox sees non-loopback clients' own addresses (src/ports/client-address.ts) where it can be set up. */
  keepClientAddress?: boolean;
  /** TCP, --accelerate after a daemon restart: when the port is in use, the listening socket a server of the sandbox holds (an fd of ours), or null. */
  held?: () => number | null;
};

export type ForwardedPort = {
  /**
   * The address the sandbox sees for this port's non-loopback clients, and
   * when it is the forwarder's, why. Settles once the connector has set up
   * the sandbox's side (await several ports' together: one round trip).
   */
  readonly sourceAddress: Promise<SourceAddress>;
  /** The port actually bound (differs from the spec when it asked for 0). */
  readonly hostPort: number;
  readonly spec: Readonly<ForwardSpec>;
  /** Stops listening and drops this port's connections and flows. Idempotent. */
  close(): void;
  /** The address the host socket listens on ("::" for all addresses where the host has IPv6). */
  readonly listenIp: string;
  /** TCP: lends the host socket to an accelerated sandbox's server (src/ports/connector.ts HostSocket.lend). */
  lend?(): Promise<{ fd: number; resume(): void } | null>;
  /** Set when the host socket was taken from a sandboxed server holding it (spec.held): the forwarder serves it after `resume`. */
  readonly held?: { resume(): void };
};

export type ForwarderStats = {
  ports: number;
  /** Forwarded TCP connections currently open (accepted and not yet fully closed). */
  tcpConnections: number;
  /** UDP client flows currently mapped. */
  udpFlows: number;
  /** Whether the connector Worker is running (it starts with the first port). */
  connectorRunning: boolean;
  /** Garbage collections the connector ran on its own, once idle after making garbage. */
  collections: number;
  /** TCP connections that went in with the client's own address, since the connector started. */
  tcpClientAddress: number;
};

export type ForwarderOptions = {
  /** A UDP flow with no datagram either way for this long is forgotten. Default 60 s (rootlessport's). */
  udpIdleMs?: number;
  /** The connector to serve the ports on; default a new one of its own (the daemon passes daemonConnector(), which egress shares). */
  connector?: Connector;
};

export type Forwarder = {
  add(spec: ForwardSpec): Promise<ForwardedPort>;
  /** Starts the connector thread now (ports about to be published), so their setup does not wait for it. */
  warm(): void;
  stats(): ForwarderStats;
  /** Closes every port and stops the connector. */
  close(): void;
};

function validate(spec: ForwardSpec): void {
  const port = (n: number) => Number.isInteger(n) && n >= 0 && n <= 65535;
  if (spec.protocol !== "tcp" && spec.protocol !== "udp") {
    throw new BurrowError(`invalid port protocol ${quote(String(spec.protocol))}: use tcp or udp`, { kind: "bad-input" });
  }
  if (spec.hostIp !== "" && isIP(spec.hostIp) === 0) {
    throw new BurrowError(`invalid host IP ${quote(spec.hostIp)}: use an IPv4 or IPv6 address, or leave it empty for all addresses`, { kind: "bad-input" });
  }
  if (!port(spec.hostPort)) {
    throw new BurrowError(`invalid host port ${spec.hostPort}: use 1-65535, or 0 for a free port`, { kind: "bad-input" });
  }
  if (!port(spec.targetPort) || spec.targetPort === 0) {
    throw new BurrowError(`invalid container port ${spec.targetPort}: use 1-65535`, { kind: "bad-input" });
  }
  if (isIP(spec.targetIp) === 0) {
    throw new BurrowError(`invalid sandbox address ${quote(spec.targetIp)} for port forwarding: not an IP address`, { kind: "bad-input" });
  }
  if (spec.targetIp6 !== undefined && isIP(spec.targetIp6) !== 6) {
    throw new BurrowError(`invalid sandbox IPv6 address ${quote(spec.targetIp6)} for port forwarding: not an IPv6 address`, { kind: "bad-input" });
  }
  for (const ip of [spec.targetIp, spec.targetIp6])
    if (ip !== undefined && isLoopback(ip)) {
      throw new BurrowError(
        `refusing to forward to ${ip}: ports are published to the sandbox's own address, never to its loopback (services bound to 127.0.0.1 inside stay private)`,
        { kind: "bad-input" },
      );
    }
  if (spec.netnsPath === "") throw new BurrowError("port forwarding needs the sandbox's netns path", { kind: "bad-input" });
}

/** Why a port asked to keep client addresses cannot, when the reason is the port itself rather than the sandbox. */
function explain(a: SourceAddress, spec: ForwardSpec, hostIp: string): SourceAddress {
  if (a.sourceAddress === "client" || a.why) return a;
  if (spec.protocol === "udp") return { sourceAddress: "forwarder", why: "UDP ports keep the forwarder's address (docs/decisions.md)" };
  if (isLoopback(hostIp))
    return { sourceAddress: "forwarder", why: `published on ${hostIp}: every client is local, and a loopback address cannot be used in the sandbox` };
  return a;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip.toLowerCase().startsWith("::ffff:127.") || isIPv6Loopback(ip);
}

export function createForwarder(options: ForwarderOptions = {}): Forwarder {
  const udpIdleMs = options.udpIdleMs ?? 60_000;
  const connector = options.connector ?? new Connector();
  const ports = new Set<HostSocket>();
  let closed = false;

  return {
    async add(spec) {
      if (closed) throw new BurrowError("the port forwarder is closed");
      validate(spec);
      const hostIp = forwarderListenAddress(spec.hostIp);
      const target = { netnsPath: spec.netnsPath, host: spec.targetIp, ipv6: spec.targetIPv6 === true, host6: spec.targetIp6, port: spec.targetPort };
      let socket: HostSocket;
      try {
        socket =
          spec.protocol === "tcp"
            ? connector.listenTcp(hostIp, spec.hostPort, target, spec.keepClientAddress === true && !isLoopback(hostIp), spec.held)
            : connector.listenUdp(hostIp, spec.hostPort, target, udpIdleMs);
      } catch (e) {
        // Bind failures are SysErrors with an errno name.
        if (e instanceof SysError) throw bindError(e, spec);
        throw new BurrowError(`cannot publish port ${spec.hostPort}/${spec.protocol}: ${messageOf(e)}`, { cause: e });
      }
      ports.add(socket);
      const sourceAddress = socket.sourceAddress.then((a) => (spec.keepClientAddress ? explain(a, spec, hostIp) : a));
      let done = false;
      return {
        sourceAddress,
        hostPort: socket.hostPort,
        spec: { ...spec },
        listenIp: hostIp,
        held: socket.held,
        lend: socket.lend && (() => (done ? Promise.resolve(null) : socket.lend!())),
        close() {
          if (done) return;
          done = true;
          ports.delete(socket);
          socket.close();
        },
      };
    },

    warm() {
      if (!closed) connector.warm();
    },

    stats() {
      return {
        ports: ports.size,
        tcpConnections: connector.tcpConnections,
        udpFlows: connector.udpFlows,
        connectorRunning: connector.running,
        collections: connector.collections,
        tcpClientAddress: connector.tcpClientAddress,
      };
    },

    close() {
      if (closed) return;
      closed = true;
      ports.clear();
      connector.close();
    },
  };
}
