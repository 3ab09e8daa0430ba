// Messages between the daemon's main thread and the accelerator Worker
// (src/accelerate/worker.ts). As with the connector: one `init` message,
// then commands as JSON lines down a pipe in the Worker's epoll set (it
// blocks in epoll_wait and reads no Worker messages); reports come back as
// Worker messages. Plain types: both ends are burrow's code in one process.
import type { EgressPolicy, PolicyContext } from "../egress/policy.ts";
import type { Refusal } from "../egress/refusals.ts";
import type { Scope } from "./scope.ts";

/**
 * A sandbox's egress policy for the supervisor (docs/egress.md
 * "--accelerate"): the spec's form and this start's context; the Worker
 * compiles it. It is the sandbox's, not one enter step's: the latest given
 * replaces the one before (its learned addresses are kept), and `forget`
 * drops it.
 */
export interface AcceleratorEgress {
  policy: EgressPolicy;
  context: PolicyContext;
  /**
   * Addresses learned already: after a daemon restart, what the new daemon
   * read back from the sandbox's sets. Given here, they are the Worker's
   * before it answers the calls that waited for it (`egress-learned` lines
   * sent after `adopt` could come too late for those).
   */
  learned?: LearnedEntry[];
}

/** One address burrow's resolver answered for allow rule `allowIndex`, reachable until `expiresAt` (ms epoch). */
export interface LearnedEntry {
  allowIndex: number;
  address: string;
  expiresAt: number;
}

/** A connect the supervisor refused for sandbox `sandbox` (or, `logOnly`, let out and reports as would-be refused). */
export interface AcceleratorRefusal {
  sandbox: string;
  refusal: Refusal;
  logOnly: boolean;
}

export type AcceleratorInit = {
  op: "init";
  /** Read end of the command pipe (non-blocking). */
  controlFd: number;
  /** The listening unix socket enter steps hand their seccomp listener to. */
  handoffFd: number;
  /** struct seccomp_notif and friends, as the kernel reported them. */
  sizes: { notif: number; resp: number; data: number };
  /** The daemon's uid as SO_PEERCRED shows its own processes (0 rootless and rootful). */
  uid: number;
  /** The table of received, unanswered calls the main thread reads if this Worker dies (src/accelerate/unanswered.ts). */
  unanswered: SharedArrayBuffer;
  /** This Worker's `lend` asks are numbered from here: unique across restarts, so a late answer meant for a dead Worker finds no ask. */
  firstAsk: number;
  /** Tests only (BURROW_TEST_ACCEL_CRASH in the daemon's environment): the Worker throws (or with `exit`, exits) on receiving its `at`-th connect. */
  crash?: { at: number; exit: boolean };
};

/** How a sandbox is served: with its scope, or (`passthrough`) every call answered CONTINUE, after it crashed the supervisor again and again. */
export interface Registration {
  /** A small number naming the sandbox in the unanswered-calls table. */
  key: number;
  passthrough?: boolean;
}

export type AcceleratorCommand =
  /** An enter step of sandbox `id` will hand over a listener, announced by `token`. */
  | ({ op: "expect"; id: string; token: string; scope: Scope; egress?: AcceleratorEgress } & Registration)
  /** A listener of sandbox `id` taken back from its keeper after a daemon restart (an fd of this process, the Worker's from now on). */
  | ({ op: "adopt"; id: string; fd: number; scope: Scope; egress?: AcceleratorEgress } & Registration)
  /** After a restart, once every listener is adopted: the calls the dead Worker left unanswered (ids in decimal), each answered CONTINUE (-1) or with an errno on whichever listener still has it pending. */
  | { op: "orphans"; calls: Array<{ id: string; answer: number }> }
  /** burrow's resolver answered `address` for allow rule `allowIndex` of sandbox `sandbox`'s policy: reachable until `expiresAt` (ms epoch). */
  | { op: "egress-learned"; sandbox: string; allowIndex: number; address: string; expiresAt: number }
  /** Sandbox `id` ended: close its listeners and whatever is pending for them. */
  | { op: "forget"; id: string }
  /** The answer to `lend` number `ask`: a host listening socket (an fd of this process, the Worker's to close), or -1 for none: the bind runs inside, or fails with `errno` when given. */
  | { op: "lent"; ask: number; fd: number; errno?: number }
  | { op: "exit" };

export type AcceleratorReport =
  | { op: "started" }
  /** Connections made through host sockets since the last report, per sandbox. */
  | { op: "counts"; counts: Record<string, number> }
  /** A listener of `id` was adopted (with `token`, when it came through the handoff); `keepFd` is a duplicate of it for the main thread to hand to a keeper (and close), or -1. */
  | { op: "attached"; id: string; keepFd: number; token?: string }
  /** A server of sandbox `id` binds TCP container port `port` (wildcard or its own address): lend it that port's host socket of `family`, if it is published so. */
  | { op: "lend"; ask: number; id: string; port: number; family: 4 | 6 }
  /** Whether the socket lent for `ask` is the server's now (else the main thread takes it back at once). */
  | { op: "borrowed"; ask: number; ok: boolean }
  /** Connects the egress policies refused (or would have, under --egress-log-only) since the last report. */
  | { op: "refusals"; refusals: AcceleratorRefusal[] }
  | { op: "warn"; message: string }
  | { op: "fatal"; message: string }
  | { op: "exited" };

/** The token line an enter step's spawner writes first on its handoff connection: 32 hex digits and a newline. */
export const TOKEN_LINE = /^[0-9a-f]{32}\n$/;
