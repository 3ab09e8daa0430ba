// Turn-taking for async work in one process: the daemon serves many requests
// at once on one thread, and some state changes must not interleave.

/**
 * One queue per key: `run(key, fn)` starts `fn` when every earlier `run`
 * of the same key has settled (resolved or rejected). Keys are independent.
 * Never call `run` for a key from inside a `fn` holding it: it would wait
 * for itself.
 */
export class KeyedMutex<K = string> {
  private tails = new Map<K, Promise<void>>();

  run<T>(key: K, fn: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(fn);
    const tail = next.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    // Forget the key once its queue is empty, so the map does not grow with every sandbox ever made.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Something holds or waits for `key`. */
  busy(key: K): boolean {
    return this.tails.has(key);
  }
}

/** A KeyedMutex with one key. */
export class Mutex {
  private readonly inner = new KeyedMutex<null>();
  run<T>(fn: () => Promise<T>): Promise<T> {
    return this.inner.run(null, fn);
  }
}
