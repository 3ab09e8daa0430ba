// Messages between the daemon's main thread and the connector Worker
// (src/ports/connector-worker.ts). The worker blocks in epoll_wait and cannot
// receive Worker messages once it runs, so: one `init` message, then commands
// as JSON lines down a pipe in its epoll set; reports come back as Worker
// messages, counters through a SharedArrayBuffer.
//
// Plain TypeScript types rather than valibot schemas: both ends are burrow's
// own code in one process, and nothing here crosses a trust boundary.

/** Main → worker, by postMessage, once. */
export type ConnectorInit = {
  op: "init";
  /** Read end of the command pipe (non-blocking). */
  controlFd: number;
  /** Int32 counters indexed by COUNTER, shared with the main thread. */
  counters: SharedArrayBuffer;
};

/** Where a published port's traffic goes: the sandbox's own address, inside its netns. */
/**
 * ipv6: the sandbox has IPv6, so a client that came over IPv6 is forwarded
 * to the sandbox's own global IPv6 address (looked up in its netns per
 * connection or flow: slirp4netns's is SLAAC, not fixed), or to `host6`
 * where the backend fixed it (bridge networks); else to `host`.
 */
export type Target = { netnsPath: string; host: string; ipv6?: boolean; host6?: string; port: number };

/**
 * TCP only: the sandbox should see each client's own address
 * (IP_TRANSPARENT, see src/ports/client-address.ts) where it can.
 */
export type ClientAddressWish = { keepClientAddress?: boolean };

/** Which address a sandbox sees for a port's (non-loopback, TCP) clients, and when not theirs, why. */
export type SourceAddress = { sourceAddress: "client" } | { sourceAddress: "forwarder"; why?: string };

/** Main → worker, one JSON line each on the command pipe. */
export type ConnectorCommand =
  /** Accept on `fd` (a listening TCP socket bound by the main thread) and relay each connection to the target. */
  | ({ op: "listen-tcp"; id: number; fd: number } & Target & ClientAddressWish)
  /** Relay datagrams arriving on `fd` (a bound UDP socket), one flow per client address; flows expire after idleMs. */
  | ({ op: "listen-udp"; id: number; fd: number; idleMs: number } & Target)
  /** Close listener `id` (its fd) and drop its connections or flows. */
  | { op: "unlisten"; id: number }
  /**
   * --accelerate lends TCP listener `id` to a sandboxed server: stop accepting
   * on it (out of the epoll set, the fd kept open; its relayed connections
   * go on) and answer "paused".
   */
  | { op: "pause"; id: number }
  /** The lent listener came back (no sandboxed process holds it): accept on it again. */
  | { op: "resume"; id: number }
  /**
   * Egress policy (docs/egress.md): make the four sockets of a sandbox with
   * a policy inside its netns and answer "egress-sockets" with their fds
   * (ours from then on: the thread keeps none of them).
   */
  | { op: "egress-sockets"; id: number; netnsPath: string; resolver: string }
  /** Close everything and leave the loop. */
  | { op: "exit" };

/** A sandbox's egress sockets, made in its netns (src/egress/service.ts EgressAttach.fds). */
export type EgressFds = {
  /** UDP bound to the resolver's address (127.0.0.53), port 53. */
  dnsUdp: number;
  /** TCP listening there. */
  dnsTcp: number;
  /** Netfilter netlink: the ruleset and learned addresses. */
  nft: number;
  /** Netfilter netlink for the ruleset's NFLOG refusals. */
  nflog: number;
};

/** Worker → main. */
export type ConnectorReport =
  | { op: "started" }
  /** A listen-tcp is served; what its clients' connections will carry. */
  | ({ op: "listening"; id: number } & SourceAddress)
  | { op: "exited" }
  /** Listener `id` is out of the epoll set (or unknown): nothing accepts on it here until "resume". */
  | { op: "paused"; id: number }
  /** Answer to "egress-sockets": the fds, or why they could not be made (none is left open then). */
  | { op: "egress-sockets"; id: number; fds: EgressFds }
  | { op: "egress-sockets"; id: number; error: string }
  /** The worker is gone (the main thread starts a new one). */
  | { op: "fatal"; message: string }
  /** Something the user should hear about; the worker goes on. */
  | { op: "error"; message: string };

export const COUNTER = {
  /** TCP connections being relayed now. */
  tcpActive: 0,
  /** TCP connections accepted since start. */
  tcpAccepted: 1,
  /** Accepted connections dropped because the sandbox side could not be set up. */
  tcpFailed: 2,
  /** UDP client flows mapped now. */
  udpFlows: 3,
  /** Garbage collections the worker ran itself (see connector-worker.ts). */
  collections: 4,
  /** Connections that went in with the client's own address. */
  tcpClientAddress: 5,
} as const;
export const COUNTERS = 6;

/**
 * Pipes start at the kernel's 64 KiB; a connection that fills one gets 1 MiB
 * (fs.pipe-max-size), which lets each splice move more. A user's pipes share
 * fs.pipe-user-pages-soft (64 MiB by default; past it, new pipes shrink to a
 * page or two), so at most this many pipes grow.
 */
export const BIG_PIPE = 1 << 20;
export const BIG_PIPE_BUDGET = 32;
