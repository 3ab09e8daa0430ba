// The one polling helper of the tests: waits for `fn` to return something
// truthy (an exception counts as "not yet"), and throws, naming `what` and
// the last exception, when `ms` pass first.
export async function until<T>(fn: () => T | Promise<T>, ms = 10_000, what = "condition"): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await Bun.sleep(20);
  }
}
