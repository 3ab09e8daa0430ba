// How many times something happened within the last window: a Worker's
// deaths, for the restart limits of the --accelerate supervisor and the
// egress resolver (each decides what to do at which count).
export class WindowCount {
  #times: number[] = [];

  constructor(readonly windowMs: number) {}

  /** Records one event at `now` (ms); returns how many fall within the window ending then, this one included. */
  add(now: number): number {
    while (this.#times.length && now - this.#times[0]! >= this.windowMs) this.#times.shift();
    this.#times.push(now);
    return this.#times.length;
  }
}
