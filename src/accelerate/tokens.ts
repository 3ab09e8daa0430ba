// The tokens the accelerator Worker expects (src/accelerate/worker.ts): one
// per enter step, announced by the main thread, taken by the listener that
// comes with it. A token whose listener never comes (its enter step failed
// before the handoff) is forgotten after `maxAgeMs`, so a long-lived
// sandbox's failed execs cannot pile them up. Pure: the clock is passed in.

/**
 * How long a token waits for its listener: generous, since a listener that
 * comes later is closed as unknown and its process's trapped calls fail.
 * The Worker's table and the main thread's copy for a restarted Worker
 * (src/accelerate/supervisor.ts) both keep tokens this long.
 */
export const TOKEN_MS = 600_000;

export class ExpectedTokens<T extends { id: string }> {
  readonly #byToken = new Map<string, { value: T; since: number }>();

  constructor(readonly maxAgeMs: number) {}

  expect(token: string, value: T, now: number): void {
    this.#byToken.set(token, { value, since: now });
  }

  /** The value announced with `token`, now taken (a token serves one listener); undefined for an unknown or expired one. */
  take(token: string, now: number): T | undefined {
    const e = this.#byToken.get(token);
    this.#byToken.delete(token);
    return e && now - e.since < this.maxAgeMs ? e.value : undefined;
  }

  /** Sandbox `id` ended: its tokens go with it. */
  forget(id: string): void {
    for (const [token, e] of this.#byToken) if (e.value.id === id) this.#byToken.delete(token);
  }

  /** Drops the tokens older than `maxAgeMs` at `now`. */
  expire(now: number): void {
    for (const [token, e] of this.#byToken) if (now - e.since >= this.maxAgeMs) this.#byToken.delete(token);
  }

  get size(): number {
    return this.#byToken.size;
  }
}
