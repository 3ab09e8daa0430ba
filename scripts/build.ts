// Compiles dist/burrow: one self-contained executable (STYLE.md #11).
// Every Worker entrypoint, and the CLI and daemon (loaded on demand by
// src/main.ts), must be listed here so the compiled binary embeds them.
import { $ } from "bun";

const root = new URL("..", import.meta.url).pathname;
const pkg = await Bun.file(`${root}/package.json`).json();
const commit = (await $`git -C ${root} rev-parse --short=12 HEAD`.nothrow().quiet().text()).trim() || "unknown";

const workers = ["src/cli/main.ts", "src/daemon/main.ts", "src/net/cni/runner.ts", "src/namespaces/create-worker.ts", "src/ports/connector-worker.ts"].filter(
  (f) => Bun.file(`${root}/${f}`).size > 0,
);

const result = await Bun.build({
  entrypoints: [`${root}/src/main.ts`, ...workers.map((w) => `${root}/${w}`)],
  compile: {
    outfile: `${root}/dist/burrow`,
    autoloadBunfig: false,
    autoloadDotenv: false,
  },
  define: {
    BURROW_VERSION: JSON.stringify(pkg.version),
    BURROW_COMMIT: JSON.stringify(commit),
  },
  minify: { syntax: true, whitespace: true },
  // Precompiled bytecode: measured 20.9 ms -> 7.9 ms for `burrow --version`,
  // since every CLI call, __enter child and launcher pays the parse.
  bytecode: true,
  format: "esm",
  sourcemap: "none",
});
if (!result.success) {
  for (const m of result.logs) console.error(m);
  process.exit(1);
}
console.error(`built dist/burrow ${pkg.version} (${commit})`);
