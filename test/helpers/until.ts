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

/**
 * Like until(), for a test that asserts on the answer itself: true once
 * `cond` holds, false (instead of throwing) when `ms` pass first.
 */
export async function eventually(cond: () => boolean | Promise<boolean>, ms = 8000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await Bun.sleep(50);
  }
  return !!(await cond());
}
