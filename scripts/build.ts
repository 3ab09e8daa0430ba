// Compiles one self-contained executable (STYLE.md #11): dist/burrow for this
// machine, or, from scripts/release.ts, one per release target.
//
//   bun scripts/build.ts                       -> dist/burrow (host target)
//   buildBinary({ target: "bun-linux-arm64", outfile })  (scripts/release.ts)
//
// Every Worker entrypoint, and the CLI and daemon (loaded on demand by
// src/main.ts), must be listed here so the compiled binary embeds them. A
// listed entrypoint that does not exist fails the build: a binary missing one
// would only fail at run time, in the one role that loads it.
import { $ } from "bun";
import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

export const ENTRYPOINTS = [
  "src/main.ts",
  "src/cli/main.ts",
  "src/daemon/main.ts",
  "src/net/cni/runner.ts",
  "src/namespaces/create-worker.ts",
  "src/ports/connector-worker.ts",
  "src/accelerate/worker.ts",
  "src/egress/worker.ts",
  "src/log-consola.ts",
  "src/log-consola-core.ts",
];

/**
 * The enter helper (src/sandbox/enter-helper.c): a static musl program that
 * joins a sandbox and execs the command, embedded in the binary and run from
 * a sealed memfd (src/sandbox/enter-spawn.ts, docs/decisions.md "The enter
 * helper"). Built for the host's architecture only: a binary for another
 * target (scripts/release.ts) embeds none and enters through the Bun
 * `__enter` role, as one built without musl-gcc does.
 */
export const ENTER_HELPER_SOURCE = "src/sandbox/enter-helper.c";
/** The embedded file's name: enter-spawn.ts finds it by this prefix. */
const ENTER_HELPER_OUT = "dist/burrow-enter-helper";

const HOST_TARGET: Record<string, string> = { x64: "bun-linux-x64", arm64: "bun-linux-arm64" };

/** Compiles the helper for this machine; null (with a warning) when musl-gcc is missing. */
export async function buildEnterHelper(): Promise<string | null> {
  const cc = Bun.which("musl-gcc");
  if (!cc) {
    console.error("build: musl-gcc not found (Debian: musl-tools, scripts/setup.sh): no enter helper, runs enter through the Bun __enter role");
    return null;
  }
  const out = `${root}/${ENTER_HELPER_OUT}`;
  // A fresh checkout has no dist/ yet.
  mkdirSync(dirname(out), { recursive: true });
  const r = await $`${cc} -static -Os -s -Wall -Wextra -Werror -fno-asynchronous-unwind-tables -o ${out} ${root}/${ENTER_HELPER_SOURCE}`.nothrow().quiet();
  if (r.exitCode !== 0) throw new Error(`musl-gcc failed on ${ENTER_HELPER_SOURCE}:\n${r.stderr.toString()}`);
  return out;
}

export interface BuildInfo {
  version: string;
  commit: string;
  /** ISO 8601, UTC, seconds: the commit's date, so two builds of one commit agree. */
  date: string;
}

export async function buildInfo(): Promise<BuildInfo> {
  const pkg = await Bun.file(`${root}/package.json`).json();
  const commit = (await $`git -C ${root} rev-parse --short=12 HEAD`.nothrow().quiet().text()).trim() || "unknown";
  // SOURCE_DATE_EPOCH (reproducible-builds.org) wins; then the commit time.
  const epoch = process.env.SOURCE_DATE_EPOCH || (await $`git -C ${root} log -1 --format=%ct`.nothrow().quiet().text()).trim();
  const date = (epoch ? new Date(Number(epoch) * 1000) : new Date()).toISOString().replace(/\.\d+Z$/, "Z");
  return { version: String(pkg.version), commit, date };
}

export async function buildBinary(opts: { outfile: string; target?: Bun.Build.CompileTarget; info?: BuildInfo }): Promise<void> {
  const missing = ENTRYPOINTS.filter((f) => !existsSync(`${root}/${f}`));
  if (missing.length) throw new Error(`entrypoints listed in scripts/build.ts do not exist: ${missing.join(", ")} (update ENTRYPOINTS)`);
  const info = opts.info ?? (await buildInfo());
  const native = !opts.target || opts.target.startsWith(HOST_TARGET[process.arch] ?? "none");
  const helper = native ? await buildEnterHelper() : null;
  const result = await Bun.build({
    entrypoints: [...ENTRYPOINTS.map((e) => `${root}/${e}`), ...(helper ? [helper] : [])],
    compile: {
      outfile: opts.outfile,
      autoloadBunfig: false,
      autoloadDotenv: false,
      ...(opts.target ? { target: opts.target } : {}),
    },
    define: {
      // Bun inlines the builder's NODE_ENV (unset reads as "development"):
      // a build run from inside `bun test` (NODE_ENV=test) made other bytes
      // and flipped libraries' test-mode checks. Pinned to what an unset
      // NODE_ENV always gave, so the binary is the same whoever builds it.
      "process.env.NODE_ENV": JSON.stringify("development"),
      BURROW_VERSION: JSON.stringify(info.version),
      BURROW_COMMIT: JSON.stringify(info.commit),
      BURROW_BUILD_DATE: JSON.stringify(info.date),
    },
    minify: { syntax: true, whitespace: true },
    // Precompiled bytecode: measured 20.9 ms -> 7.9 ms for `burrow --version`,
    // since every CLI call, __enter child and launcher pays the parse.
    bytecode: true,
    format: "esm",
    // Code shared by the entrypoints, and each CLI command, become chunks
    // loaded when first imported: `burrow run` no longer loads the whole
    // CLI bundle (every command, the format and template code) before its
    // first request (issue 17 item 2, docs/benchmarks.md).
    splitting: true,
    sourcemap: "none",
  });
  if (!result.success) throw new Error(`bun build failed:\n${result.logs.map(String).join("\n")}`);
}

if (import.meta.main) {
  try {
    const info = await buildInfo();
    await buildBinary({ outfile: `${root}/dist/burrow`, info });
    console.error(`built dist/burrow ${info.version} (${info.commit})`);
  } catch (e) {
    console.error(`build: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}
