// `bun run release`: everything a release page, npm and apt need, in
// dist/release/ and nowhere else (staging happens in a temporary directory
// that is removed at the end):
//
//   burrow-linux-x64, burrow-linux-arm64        cross-compiled by Bun, bytecode on
//   burrow_<version>_amd64.deb, ..._arm64.deb   scripts/packaging/deb.ts
//   burrow-netns-<version>.tgz                  npm wrapper (scripts/packaging/npm.ts)
//   burrow-netns-linux-{x64,arm64}-<version>.tgz
//   SHA256SUMS                                  over every other file
//
// Bun fetches the arm64 runtime from the npm registry once and keeps it in
// its install cache (~/.bun/install/cache/bun-linux-aarch64-v<bun version>),
// so later releases build offline. Version from package.json; commit and
// build date (the commit's time, or SOURCE_DATE_EPOCH) as in scripts/build.ts.
import { $ } from "bun";
import { mkdtempSync, readdirSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { buildBinary, buildInfo } from "./build.ts";
import { buildDeb, DEB_ARCH } from "./packaging/deb.ts";
import { manPages } from "./packaging/man.ts";
import { NPM_ARCHES, packPlatform, packWrapper } from "./packaging/npm.ts";
import { commandTree } from "../src/cli/_tree.ts";
import { completionScript } from "../src/cli/completion.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const out = `${root}/dist/release`;

export const TARGETS = { x64: "bun-linux-x64", arm64: "bun-linux-arm64" } as const;

/** The file names a release of VERSION consists of, SHA256SUMS last. */
export function releaseFiles(version: string): string[] {
  return [
    ...NPM_ARCHES.map((a) => `burrow-linux-${a}`),
    ...NPM_ARCHES.map((a) => `burrow_${version}_${DEB_ARCH[a]}.deb`),
    `burrow-netns-${version}.tgz`,
    ...NPM_ARCHES.map((a) => `burrow-netns-linux-${a}-${version}.tgz`),
    "SHA256SUMS",
  ];
}

function step(msg: string): void {
  if (process.stderr.isTTY) process.stderr.write(`release: ${msg}\n`);
}

export async function release(): Promise<string[]> {
  const info = await buildInfo();
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const stage = mkdtempSync(`${tmpdir()}/burrow-release-`);
  try {
    for (const arch of NPM_ARCHES) {
      step(`compiling burrow-linux-${arch} (${TARGETS[arch]})`);
      await buildBinary({ outfile: `${out}/burrow-linux-${arch}`, target: TARGETS[arch], info });
    }
    const tree = await commandTree();
    const pages = manPages(tree, info.version, info.date.slice(0, 10));
    const completions = { bash: completionScript("bash"), zsh: completionScript("zsh"), fish: completionScript("fish") };
    for (const arch of NPM_ARCHES) {
      step(`packing burrow_${info.version}_${DEB_ARCH[arch]}.deb`);
      await buildDeb({
        ...info,
        arch,
        binary: `${out}/burrow-linux-${arch}`,
        manPages: pages,
        completions,
        stage: `${stage}/deb-${arch}`,
        outfile: `${out}/burrow_${info.version}_${DEB_ARCH[arch]}.deb`,
      });
      step(`packing the npm package for linux-${arch}`);
      await packPlatform(`${stage}/npm-${arch}`, out, info.version, arch, `${out}/burrow-linux-${arch}`);
    }
    step("packing the npm wrapper");
    await packWrapper(`${stage}/npm-wrapper`, out, info.version);
    const files = readdirSync(out).sort();
    await $`sha256sum -- ${files}`
      .cwd(out)
      .quiet()
      .then((r) => Bun.write(`${out}/SHA256SUMS`, r.stdout));
    const made = readdirSync(out).sort();
    const want = releaseFiles(info.version).sort();
    if (made.join("\n") !== want.join("\n")) throw new Error(`dist/release holds ${made.join(", ")}; expected ${want.join(", ")}`);
    return made;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  try {
    const t = performance.now();
    const files = await release();
    console.error(`release: ${files.length} files in dist/release in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  } catch (e) {
    console.error(`release: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}
