// What the fast-check property files share (test/unit/properties*.test.ts):
// the case count and seed from the environment, the one property every
// parser has (it returns, or throws a one-line BurrowError), and strings
// over a parser's own alphabet.
import fc from "fast-check";
import { BurrowError } from "../../src/errors.ts";

/** BURROW_PROPERTY_RUNS cases per property (300 in npm test); BURROW_PROPERTY_SEED replays a failure. */
const numRuns = Number(process.env.BURROW_PROPERTY_RUNS || 300);
const seed = process.env.BURROW_PROPERTY_SEED ? Number(process.env.BURROW_PROPERTY_SEED) : undefined;
export const params = { numRuns, ...(seed === undefined ? {} : { seed }) };

/** Runs `fn`; it may return or throw a one-line BurrowError, nothing else. */
export function burrowOrValue<T>(fn: () => T): T | BurrowError {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof BurrowError)) throw new Error(`threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} instead of a BurrowError`);
    if (/[\r\n]/.test(e.message)) throw new Error(`error is not one line: ${JSON.stringify(e.message)}`);
    return e;
  }
}

/** Strings over a parser's own alphabet (to get past the first check), mixed with any text. */
export const textOf = (alphabet: string, maxLength = 40) => fc.oneof(fc.string({ unit: fc.constantFrom(...alphabet), maxLength }), fc.string({ maxLength }));
