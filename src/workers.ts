// Where a separately bundled entrypoint lives (Workers, and the CLI and
// daemon roles, which src/main.ts loads on demand so that the small
// single-threaded roles do not pay for parsing them).
//
// From source (`bun test`, `bun src/main.ts`) it is the .ts file under src/.
// `bun build --compile` embeds each entrypoint listed in scripts/build.ts as
// /$bunfs/root/<path relative to the common root of all entrypoints>.js:
// "namespaces/create-worker.js" for the release build, "src/ports/..." for a
// test harness built from test/helpers. A bare name is never returned: Bun
// would resolve it against the current directory.
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export function workerUrl(relFromSrc: string): string {
  const source = new URL(`./${relFromSrc}`, import.meta.url);
  if (source.protocol === "file:" && existsSync(source.pathname)) return source.pathname;
  const root = dirname(Bun.main);
  const js = relFromSrc.replace(/\.ts$/, ".js");
  for (const candidate of [js, `src/${js}`, basename(js)]) {
    const p = join(root, candidate);
    if (existsSync(p)) return p;
  }
  throw new Error(`${relFromSrc} is not part of this build: list src/${relFromSrc} in scripts/build.ts`);
}
