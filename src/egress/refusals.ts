// Refusal events without flooding the state (docs/egress.md "Events"): a
// tight loop against a refused address must never push a sandbox's start
// and died events out of the events table. One RefusalEvents per sandbox;
// the daemon offers it every refusal (from NFLOG, the resolver, the
// --accelerate supervisor) and calls flush() about once a second. Pure: the
// clock is passed in (milliseconds).
import { refusalTag } from "./nft.ts";
import type { CompiledPolicy } from "./policy.ts";

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

/** An event's status in `burrow events` (docs/egress.md "Events and visibility"). */
export type RefusalStatus = "egress-refused" | "egress-would-refuse" | "egress-dns-refused";

/**
 * Which status a refusal's event has: everything under --egress-log-only is
 * a would-be refusal; otherwise a refusal with a name came from the
 * resolver (a name not allowed, an address left out of an answer), any
 * other from the ruleset or --accelerate's supervisor.
 */
export function refusalStatus(logOnly: boolean, refusal: Pick<Refusal, "name">): RefusalStatus {
  if (logOnly) return "egress-would-refuse";
  return refusal.name === undefined ? "egress-refused" : "egress-dns-refused";
}

/** A packet the ruleset logged to NFLOG (src/sys/nflog.ts's NflogPacket). */
export interface LoggedPacket {
  prefix: string;
  destination: string;
  protocol: string;
  port?: number;
}

/**
 * The refusal a logged packet stands for: its log prefix names the rule
 * (nft.ts's refusalTag: `deny[N]`, `dns`, `default`), mapped back to the
 * rule's flag text and a reason. null for a prefix that is not burrow's, or
 * a deny rule the policy does not have (a table left by an older policy).
 */
export function loggedRefusal(policy: CompiledPolicy, packet: LoggedPacket): Refusal | null {
  const tag = refusalTag(packet.prefix);
  if (tag === null) return null;
  const where = { destination: packet.destination, ...(packet.port === undefined ? {} : { port: packet.port }), protocol: packet.protocol };
  if (tag === "dns") return { ...where, rule: null, reason: "dns to another resolver" };
  if (tag === "default") return { ...where, rule: null, reason: "default deny" };
  if (tag === "spoof") return { ...where, rule: null, reason: "forged source address" };
  const rule = policy.deny.find((r) => r.id === tag);
  return rule ? { ...where, rule: rule.text, reason: "deny rule" } : null;
}
