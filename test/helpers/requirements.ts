// Skipping an integration test, the one way: only where the machine really
// lacks something, always with the reason printed. As root the machine is
// one scripts/setup.sh prepared (CI, and `npm test`, which runs setup
// first), so a missing requirement there is a failure of the suite, not a
// skip: a test that silently stops running is a test that was lost.
import { describe, test } from "bun:test";
import { isRoot } from "./env.ts";

/** "X, Y not found in PATH", or null when every tool is there. `path` as Bun.which takes it. */
export function missingTools(names: string[], path?: string): string | null {
  const missing = names.filter((n) => Bun.which(n, path ? { PATH: path } : undefined) === null);
  return missing.length ? `${missing.join(", ")} not found in PATH${path ? ` (${path})` : ""}` : null;
}

/** The first reason that is not null: what the tests need, in order. */
export function firstMissing(...reasons: Array<string | null | (() => string | null)>): string | null {
  for (const r of reasons) {
    const why = typeof r === "function" ? r() : r;
    if (why) return why;
  }
  return null;
}

export const needsRoot = (): string | null => (isRoot ? null : "needs root (it makes network namespaces and drives the test user)");

function failing(name: string, why: string): () => void {
  return () => {
    test(`${name}: requirements`, () => {
      throw new Error(`running as root, yet ${why}: run scripts/setup.sh (it installs every requirement)`);
    });
  };
}

/** describe(), or when `missing` says what the machine lacks: a printed skip (not root) or a failing test (root). */
export function describeWhen(missing: string | null): (name: string, fn: () => void) => void {
  return (name, fn) => {
    if (!missing) return describe(name, fn);
    if (isRoot) return describe(name, failing(name, missing));
    console.warn(`skipping "${name}": ${missing}`);
    return describe.skip(name, fn);
  };
}

/** The same for one test. */
export function testWhen(missing: string | null): (name: string, fn: () => unknown, timeout?: number) => void {
  return (name, fn, timeout) => {
    if (!missing) return test(name, fn as () => Promise<void>, timeout);
    if (isRoot)
      return test(`${name}: requirements`, () => {
        throw new Error(`running as root, yet ${missing}: run scripts/setup.sh (it installs every requirement)`);
      });
    console.warn(`skipping "${name}": ${missing}`);
    return test.skip(name, fn as () => Promise<void>);
  };
}
