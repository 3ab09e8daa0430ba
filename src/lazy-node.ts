// node:fs and node:os, loaded on first use, for the modules on the path of a
// warm `run` and `exec`: loading node:fs costs a CLI start ~1.4 ms and
// node:os ~0.6 ms (measured in a compiled program), and that path needs
// neither (its few file calls are src/sys/files.ts). Those modules reach
// them only through these getters, for the calls off that path (starting a
// daemon, a holder, reading /proc for a stopped one, ...); the test
// test/unit/cli-imports.test.ts walks their imports and keeps it so.
// Modules elsewhere (the daemon, the Workers) import node:fs as usual.
import type * as Fs from "node:fs";
import type * as Os from "node:os";

let fs: typeof Fs | undefined;
let os: typeof Os | undefined;

export function nodeFs(): typeof Fs {
  return (fs ??= require("node:fs") as typeof Fs);
}

export function nodeOs(): typeof Os {
  return (os ??= require("node:os") as typeof Os);
}
