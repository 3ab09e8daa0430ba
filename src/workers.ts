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
//
// Existence is Bun.file's size (a bundle is never empty): node:fs and
// node:path cost the CLI's start ~1.5 ms to load (src/lazy-node.ts).
const exists = (path: string): boolean => Bun.file(path).size > 0;

export function workerUrl(relFromSrc: string): string {
  // A compiled binary has no sources: no URL parsed for them (every CLI start calls this).
  if (!Bun.main.startsWith("/$bunfs/")) {
    const source = new URL(`./${relFromSrc}`, import.meta.url);
    if (source.protocol === "file:" && exists(source.pathname)) return source.pathname;
  }
  const root = Bun.main.slice(0, Bun.main.lastIndexOf("/"));
  const js = relFromSrc.endsWith(".ts") ? `${relFromSrc.slice(0, -3)}.js` : relFromSrc;
  for (const candidate of [js, `src/${js}`, js.slice(js.lastIndexOf("/") + 1)]) {
    const p = `${root}/${candidate}`;
    if (exists(p)) return p;
  }
  throw new Error(`${relFromSrc} is not part of this build: list src/${relFromSrc} in scripts/build.ts`);
}
