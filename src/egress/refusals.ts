// Refusal events without flooding the state (docs/egress.md "Events"): a
// tight loop against a refused address must never push a sandbox's start
// and died events out of the events table. One RefusalEvents per sandbox;
// the daemon offers it every refusal (from NFLOG, the resolver, the
// --accelerate supervisor) and calls flush() about once a second. Pure: the
// clock is passed in (milliseconds).

export interface Refusal {
  destination: string;
  /** TCP and UDP only. */
  port?: number;
  protocol: string;
  /** The refusing rule's flag text, or null for the default refusal. */
  rule: string | null;
  reason: string;
  /** The asked name, for a refused DNS query. */
  name?: string;
}

export interface RefusalEvent extends Refusal {
  /** How many refusals this event stands for (1 for the first of its kind). */
  count: number;
}

export interface RefusalLimits {
  /** Repeats of one refusal within this window become one event with a count. */
  windowMs: number;
  /** At most this many events per sandbox per window; beyond, only a count is kept. */
  perWindow: number;
  /** At most this many different refusals remembered per window (memory bound). */
  maxKinds: number;
}

export const DEFAULT_REFUSAL_LIMITS: RefusalLimits = { windowMs: 60_000, perWindow: 60, maxKinds: 1024 };

const keyOf = (r: Refusal) => JSON.stringify([r.destination, r.port ?? null, r.protocol, r.rule, r.reason, r.name ?? null]);

export class RefusalEvents {
  #windowStart = Number.NEGATIVE_INFINITY;
  /** Refusals seen this window -> repeats not reported yet. */
  #kinds = new Map<string, { refusal: Refusal; repeats: number }>();
  #emitted = 0;
  /** Refusals no event could carry this window (over perWindow or maxKinds). */
  #suppressed = 0;

  constructor(readonly limits: RefusalLimits = DEFAULT_REFUSAL_LIMITS) {}

  /**
   * A refusal happened at `now`. Returns the events to record now: the
   * first of its kind in a window at once; repeats are folded into the
   * window's flush.
   */
  offer(refusal: Refusal, now: number): RefusalEvent[] {
    const out = this.#roll(now);
    const key = keyOf(refusal);
    const seen = this.#kinds.get(key);
    if (seen) {
      seen.repeats++;
      return out;
    }
    if (this.#emitted >= this.limits.perWindow || this.#kinds.size >= this.limits.maxKinds) {
      this.#suppressed++;
      return out;
    }
    this.#kinds.set(key, { refusal, repeats: 0 });
    this.#emitted++;
    out.push({ ...refusal, count: 1 });
    return out;
  }

  /** Events due at `now`: at a window's end, one per refusal that repeated, and the count of those suppressed. */
  flush(now: number): RefusalEvent[] {
    return this.#roll(now);
  }

  /** Ends the window when `now` is past it: its repeats and its suppressed count become events. */
  #roll(now: number): RefusalEvent[] {
    if (now - this.#windowStart < this.limits.windowMs) return [];
    const out: RefusalEvent[] = [];
    for (const { refusal, repeats } of this.#kinds.values()) if (repeats > 0) out.push({ ...refusal, count: repeats });
    if (this.#suppressed > 0)
      out.push({ destination: "", protocol: "", rule: null, reason: "suppressed: more refusals than events allowed in a minute", count: this.#suppressed });
    this.#kinds.clear();
    this.#emitted = 0;
    this.#suppressed = 0;
    this.#windowStart = now;
    return out;
  }
}
