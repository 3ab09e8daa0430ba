// Where a Worker entrypoint lives in each way burrow runs.
//
// From source (`bun src/main.ts`, `bun test`) the .ts file sits next to the
// importing module. In `bun build --compile` the entrypoints listed in
// scripts/build.ts are embedded as "/$bunfs/root/<path relative to the common
// root of all entrypoints>.js" (src/main.ts + src/ports/x.ts → "ports/x.js";
// a harness in test/helpers + src/ports/x.ts → "src/ports/x.js"), and
// `new URL("./x.ts", import.meta.url)` points at the bundle's root instead,
// which does not exist (measured with Bun 1.4.5). A pre-bundled outdir has the
// same layout on disk. A bare name is never used: Bun would load it from the
// current directory.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * The path to load `relFromSrc` (e.g. "ports/connector-worker") as a Worker:
 * `sibling` is `new URL("./connector-worker.ts", import.meta.url)` from the
 * caller, used when running from source.
 */
export function workerPath(relFromSrc: string, sibling: URL): string {
  if (existsSync(sibling.pathname)) return sibling.pathname;
  const root = dirname(Bun.main);
  const base = relFromSrc.split("/").at(-1)!;
  for (const candidate of [`${relFromSrc}.js`, `src/${relFromSrc}.js`, `${base}.js`]) {
    const p = join(root, candidate);
    if (existsSync(p)) return p;
  }
  throw new Error(`the ${relFromSrc} worker is not part of this build (list src/${relFromSrc}.ts in scripts/build.ts)`);
}
