// Messages between the daemon's main thread (src/egress/service.ts) and the
// egress Worker (src/egress/worker.ts), which serves every sandbox's
// resolver and reads every sandbox's NFLOG refusals. Like the connector
// (src/ports/connector-protocol.ts): the worker blocks in epoll_wait, so one
// `init` message, then commands as JSON lines down a pipe in its epoll set;
// reports come back as Worker messages.
//
// Plain TypeScript types rather than valibot schemas: both ends are burrow's
// own code in one process, and nothing here crosses a trust boundary (the
// policy was validated when the spec was read).
import type { EgressPolicy, PolicyContext } from "./policy.ts";
import type { Refusal } from "./refusals.ts";

/** A sandbox to serve: what the daemon hands the service at each start (docs/egress.md "The resolver"). */
export interface EgressAttach {
  id: string;
  name: string;
  /** The spec form (policy.ts). */
  policy: EgressPolicy;
  /** For compilePolicy, resolved at this start. */
  context: PolicyContext;
  /** Resolver IPs (v4 or v6), port 53: --dns servers, else the host's resolv.conf nameservers. */
  upstreams: string[];
  /** Made in the sandbox's netns; the service owns them from here (closes them on detach). */
  fds: { dnsUdp: number; dnsTcp: number; nft: number; nflog: number };
  /**
   * Optional: what the sandbox's learned sets hold already (nft-netlink.ts
   * readLearned, after a daemon restart): counted by learnedCount and handed
   * to onLearned at once, as if learned now. Never sent to the worker.
   */
  learned?: readonly { set: string; address: string; expiresInMs: number }[];
}

/** Main → worker, by postMessage, once. */
export type EgressInit = {
  op: "init";
  /** Read end of the command pipe (non-blocking). */
  controlFd: number;
  /** Upstream servers' port: 53, other only in tests (an unprivileged test upstream). */
  upstreamPort: number;
  /**
   * Tests only: modules whose `learnAddresses` (nft-netlink.ts's signature)
   * and `readNflog` (src/sys/nflog.ts's) the worker uses instead of the real
   * ones, so a test sees what would be learned and feeds logged packets.
   */
  learnerModule?: string;
  nflogModule?: string;
  /** Tests only: a shorter idle time for DNS-over-TCP connections than TCP_IDLE_MS. */
  tcpIdleMs?: number;
  /** Tests only: a shorter deadline for one DNS-over-TCP message to arrive whole than TCP_FRAME_MS. */
  tcpFrameMs?: number;
};

/** Main → worker, one JSON line each on the command pipe. */
export type EgressCommand =
  /** Serve this sandbox's resolver sockets and read its NFLOG socket (an attach of a served id replaces it). */
  | ({ op: "attach" } & Omit<EgressAttach, "learned">)
  /** Stop serving sandbox `id`: its fds closed, its queries dropped. */
  | { op: "detach"; id: string }
  /** Close everything and leave the loop. */
  | { op: "exit" };

/** Worker → main. */
export type EgressReport =
  | { op: "started" }
  /** Sandbox `id` is served. */
  | { op: "attached"; id: string }
  /** Sandbox `id` could not be served; its fds are closed. */
  | { op: "attach-failed"; id: string; message: string }
  /**
   * `address` is in sandbox `id`'s set of allow rule `allowIndex` until `expiresAt` (ms epoch): sent after the set has it, before the answer.
   * Only when the set's entry was written (its expiry moved later): an answer the entry already covers sends none.
   */
  | { op: "learned"; id: string; allowIndex: number; address: string; expiresAt: number }
  /** A refusal (or, under --egress-log-only, a would-be one) in sandbox `id`, not folded yet. */
  | { op: "refused"; id: string; refusal: Refusal }
  | { op: "exited" }
  /** The worker is gone (the main thread starts a new one). */
  | { op: "fatal"; message: string }
  /** Something the log should say; the worker goes on. */
  | { op: "error"; message: string };
