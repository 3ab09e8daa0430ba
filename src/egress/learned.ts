// The addresses a sandbox's allowed names resolved to (docs/egress.md "The
// resolver"): the daemon's copy of what nft.ts's learned sets hold, which
// --accelerate's supervisor asks through policy.ts's `verdict`. Pure: the
// clock is passed in (milliseconds), nothing expires by itself.
import { canonicalSubnet, type IpAddress, ipToString } from "../net/cni/ip.ts";

/** A learned address lives at least this long, whatever the record's TTL (TTL 0 answers are common behind CDNs). */
export const MIN_LEARNED_SECONDS = 60;
/** And at most this long: the resolver cuts the TTL it answers with to the same, so no client caches an address past its entry. */
export const MAX_LEARNED_SECONDS = 86_400;

/** How long an address answered with `ttl` stays in the allow set. */
export function learnedSeconds(ttl: number): number {
  return Math.min(MAX_LEARNED_SECONDS, Math.max(MIN_LEARNED_SECONDS, Math.floor(ttl)));
}

/** The TTL the sandbox is told: never longer than its address stays allowed. */
export function answeredTtl(ttl: number): number {
  return Math.min(Math.max(0, Math.floor(ttl)), MAX_LEARNED_SECONDS);
}

/** How often `add` forgets what expired: the copy shrinks without anyone asking for its count. */
export const LEARNED_PRUNE_MS = 60_000;

export class LearnedAddresses {
  /** canonical address -> allow-rule index -> expiry (ms). */
  readonly #entries = new Map<string, Map<number, number>>();
  /** When `add` prunes next (ms). */
  #nextPrune = 0;

  /**
   * Learns `address` for allow rule `ruleIndex` until `now + learnedSeconds(ttl)`; a later expiry already held is kept.
   * Forgets what expired at most once per LEARNED_PRUNE_MS, so a sandbox that keeps resolving new names holds only the live ones.
   */
  add(address: string, ruleIndex: number, ttl: number, now: number): void {
    if (now >= this.#nextPrune) this.prune(now);
    this.addUntil(address, ruleIndex, now + learnedSeconds(ttl) * 1000);
  }

  /** Learns `address` for allow rule `ruleIndex` until `until` (ms epoch), as another copy reported it (--accelerate's supervisor); a later expiry already held is kept. */
  addUntil(address: string, ruleIndex: number, until: number): void {
    const key = keyOf(address);
    if (!key) return;
    const rules = this.#entries.get(key) ?? new Map<number, number>();
    rules.set(ruleIndex, Math.max(rules.get(ruleIndex) ?? 0, until));
    this.#entries.set(key, rules);
  }

  /** The allow rules `ip` is learned for at `now` (policy.ts's `Learned`). */
  rulesFor(ip: IpAddress, now: number): number[] {
    const rules = this.#entries.get(ipToString(ip));
    if (!rules) return [];
    return [...rules].filter(([, until]) => until > now).map(([index]) => index);
  }

  /** Forgets what expired by `now`; returns how many addresses are left. */
  prune(now: number): number {
    this.#nextPrune = now + LEARNED_PRUNE_MS;
    for (const [key, rules] of this.#entries) {
      for (const [index, until] of rules) if (until <= now) rules.delete(index);
      if (rules.size === 0) this.#entries.delete(key);
    }
    return this.#entries.size;
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** One spelling per address (`2001:DB8::0:1` and `2001:db8::1` are one entry). */
function keyOf(address: string): string | null {
  const subnet = canonicalSubnet(`${address}/${address.includes(":") ? 128 : 32}`);
  return subnet ? subnet.slice(0, subnet.lastIndexOf("/")) : null;
}
