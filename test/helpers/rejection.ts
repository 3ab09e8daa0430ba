import { expect } from "bun:test";
import { BurrowError } from "../../src/errors.ts";

/** The BurrowError `p` rejects with; fails the test when it resolves or throws something else. */
export async function rejection(p: Promise<unknown>): Promise<BurrowError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BurrowError);
    return e as BurrowError;
  }
  throw new Error("expected a BurrowError");
}

/** The BurrowError `fn` throws, checked to exit 125; fails the test when it returns or throws something else. */
export function refusal(fn: () => unknown): BurrowError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BurrowError);
    expect((e as BurrowError).exitCode).toBe(125);
    return e as BurrowError;
  }
  throw new Error("expected a refusal");
}

/** The BurrowError `fn` throws; fails the test when it returns or throws something else. */
export function thrown(fn: () => unknown): BurrowError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BurrowError);
    return e as BurrowError;
  }
  throw new Error("expected a BurrowError, nothing was thrown");
}
