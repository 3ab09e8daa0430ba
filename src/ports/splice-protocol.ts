// Messages between the daemon's main thread and the splice Worker
// (src/ports/splice-worker.ts). The worker blocks in epoll_wait and cannot
// receive Worker messages after it started, so: one `init` message, then
// commands as JSON lines down a pipe; reports come back as Worker messages.

/** Main → worker, by postMessage, once. */
export type SpliceInit = {
  op: "init";
  /** Read end of the command pipe (non-blocking). */
  controlFd: number;
  /** Int32 counters indexed by COUNTER, shared with the main thread. */
  counters: SharedArrayBuffer;
};

/** Main → worker, one JSON line each on the command pipe. */
export type SpliceCommand =
  /** Accept on `fd` (a listening socket the main thread bound) and relay to host:port inside netnsPath. */
  | { op: "listen"; id: number; fd: number; netnsPath: string; host: string; port: number }
  /** Close listener `id` and drop its connections. */
  | { op: "unlisten"; id: number }
  /** Close everything and leave the loop. */
  | { op: "exit" };

/** Worker → main. */
export type SpliceReport = { op: "started" } | { op: "exited" } | { op: "fatal"; message: string };

export const COUNTER = {
  /** Connections being relayed now. */
  active: 0,
  /** Connections accepted since start. */
  accepted: 1,
  /** Accepted connections dropped because the sandbox side could not be set up. */
  failed: 2,
} as const;
export const COUNTERS = 3;

/**
 * Pipes start at the kernel's 64 KiB; a connection that fills one gets 1 MiB
 * (fs.pipe-max-size), which is what makes splice beat copying in JS. A user's
 * pipes share fs.pipe-user-pages-soft (64 MiB by default; past it, new pipes
 * shrink to a page or two), so at most this many pipes grow.
 */
export const BIG_PIPE = 1 << 20;
export const BIG_PIPE_BUDGET = 32;
