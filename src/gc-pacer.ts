// Garbage collection for a Worker thread that sits in epoll_wait and never
// returns to its event loop (the connector, the egress resolver):
// JavaScriptCore collects a thread's heap on timers that run from that
// loop, so left alone such a thread collects only when an allocation
// threshold of many MB is crossed, and the daemon's RSS grows with every
// connection or query (issue 10's soak). The thread collects itself instead:
// once it has been idle for `idleMs` after making garbage, and at least
// every `maxMs` while it keeps making some. A collection of such a small
// heap takes under a millisecond; an idle thread wakes no more than before.
export class GcPacer {
  /** When the first and the last garbage since the last collection were made (0: none). */
  #since = 0;
  #last = 0;

  constructor(
    private readonly idleMs: number,
    private readonly maxMs: number,
    private readonly onCollect: () => void = () => {},
  ) {}

  /** Something was allocated that a collection should soon take back. */
  madeGarbage(now = Date.now()): void {
    this.#last = now;
    if (this.#since === 0) this.#since = now;
  }

  /** Collects when due; returns how long epoll may sleep until it is (-1: no garbage waiting). */
  collectIfDue(now: number): number {
    if (this.#since === 0) return -1;
    const due = Math.min(this.#last + this.idleMs, this.#since + this.maxMs);
    if (now < due) return due - now;
    this.#since = 0;
    Bun.gc(true);
    this.onCollect();
    return -1;
  }
}
