// Where a Worker entrypoint lives. `bun build --compile` embeds each worker
// listed in scripts/build.ts at /$bunfs/root/<path relative to src>.js; from
// source (bun test) the .ts file next to its module is used.
export function workerUrl(relFromSrc: string): string {
  const compiled = import.meta.url.includes("$bunfs") || (process.argv[1] ?? "").startsWith("/$bunfs");
  if (compiled) return `/$bunfs/root/${relFromSrc.replace(/\.ts$/, ".js")}`;
  return new URL(`./${relFromSrc}`, import.meta.url).href;
}
