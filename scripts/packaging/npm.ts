// The npm packages, the way esbuild, Biome and opencode ship native binaries:
// one package per platform carrying the binary (`os`/`cpu` so npm installs
// only the matching one), listed as optionalDependencies of a small wrapper
// whose bin script runs it. Nothing is downloaded at install time and there
// is no install script. Names checked free with `npm view` (docs/decisions.md).
import { $ } from "bun";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";

export const WRAPPER = "burrow-netns";
export const platformPackage = (arch: string) => `${WRAPPER}-linux-${arch}`;
export const NPM_ARCHES = ["x64", "arm64"] as const;

const common = (version: string) => ({
  version,
  license: "UNLICENSED",
  engines: { node: ">=18" },
});

// The wrapper's bin: finds the platform package next to it (npm puts it in
// the wrapper's node_modules, or beside it for `npm install -g a.tgz b.tgz`)
// and runs its binary with the same arguments, stdio and exit status.
const WRAPPER_BIN = `#!/usr/bin/env node
"use strict";
const { spawnSync } = require("node:child_process");
const supported = ${JSON.stringify(NPM_ARCHES)};
const pkg = "${WRAPPER}-linux-" + process.arch;
function fail(msg) {
  process.stderr.write("burrow: " + msg + "\\n");
  process.exit(125);
}
if (process.platform !== "linux") fail("burrow runs on Linux only (this is " + process.platform + ")");
if (!supported.includes(process.arch)) fail("no burrow binary for linux-" + process.arch + ": burrow ships for linux " + supported.join(" and "));
let bin;
try {
  bin = require.resolve(pkg + "/bin/burrow");
} catch {
  fail(pkg + " is not installed: reinstall ${WRAPPER} without --no-optional / --omit=optional");
}
const r = spawnSync(bin, process.argv.slice(2), { stdio: "inherit" });
if (r.error) fail("cannot run " + bin + ": " + r.error.message);
if (r.signal) process.kill(process.pid, r.signal);
process.exit(r.status ?? 125);
`;

/** Packs the platform package for ARCH into outDir; returns the tarball's file name. */
export async function packPlatform(stage: string, outDir: string, version: string, arch: string, binary: string): Promise<string> {
  mkdirSync(`${stage}/bin`, { recursive: true });
  await $`cp ${binary} ${stage}/bin/burrow`.quiet();
  chmodSync(`${stage}/bin/burrow`, 0o755);
  const manifest = {
    name: platformPackage(arch),
    ...common(version),
    description: `The burrow binary for Linux ${arch} (installed by ${WRAPPER})`,
    os: ["linux"],
    cpu: [arch],
    files: ["bin/burrow"],
    preferUnplugged: true,
  };
  writeFileSync(`${stage}/package.json`, `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(`${stage}/README.md`, `The Linux ${arch} binary of burrow. Install \`${WRAPPER}\` instead: it picks this package for you.\n`);
  return pack(stage, outDir);
}

export async function packWrapper(stage: string, outDir: string, version: string): Promise<string> {
  mkdirSync(`${stage}/bin`, { recursive: true });
  writeFileSync(`${stage}/bin/burrow.js`, WRAPPER_BIN);
  chmodSync(`${stage}/bin/burrow.js`, 0o755);
  const manifest = {
    name: WRAPPER,
    ...common(version),
    description: "Rootless network sandboxes, port publishing and bridge networks for Linux",
    bin: { burrow: "bin/burrow.js" },
    os: ["linux"],
    files: ["bin/burrow.js"],
    optionalDependencies: Object.fromEntries(NPM_ARCHES.map((a) => [platformPackage(a), version])),
  };
  writeFileSync(`${stage}/package.json`, `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(`${stage}/README.md`, `# ${WRAPPER}\n\nburrow: rootless network sandboxes for Linux. \`npm install -g ${WRAPPER}\`, then \`burrow doctor\`.\n`);
  return pack(stage, outDir);
}

async function pack(stage: string, outDir: string): Promise<string> {
  // npm pack works offline and writes fixed times into the tarball.
  const out = await $`npm pack --silent --pack-destination ${outDir}`
    .cwd(stage)
    .env({ ...process.env, npm_config_update_notifier: "false" })
    .quiet()
    .text();
  return out.trim().split("\n").at(-1)!;
}
