// Where a separately bundled entrypoint lives (Workers, and the CLI and
// daemon roles, which src/main.ts loads on demand so that the small
// single-threaded roles do not pay for parsing them). `bun build --compile`
// embeds each one listed in scripts/build.ts at /$bunfs/root/<path relative
// to src>.js; from source (bun test) the .ts file is used.
export function workerUrl(relFromSrc: string): string {
  const compiled = import.meta.url.includes("$bunfs") || (process.argv[1] ?? "").startsWith("/$bunfs");
  if (compiled) return `/$bunfs/root/${relFromSrc.replace(/\.ts$/, ".js")}`;
  return new URL(`./${relFromSrc}`, import.meta.url).href;
}
