// Running one plugin process: the request/result shapes and the default
// spawner. Its own module so the __cni-runner role (its own small bundle)
// needs nothing else from the CNI runtime.

// The shapes are messages to and from the __cni-runner role: src/messages.ts.
import type { SpawnRequest, SpawnResult } from "./messages.ts";
import { runProcess } from "../../run-process.ts";

export type { SpawnRequest, SpawnResult };
/** Runs one plugin process; replace it to run plugins some other way (tests, another namespace). */
export type PluginSpawner = (req: SpawnRequest) => Promise<SpawnResult>;

/** The default spawner: Bun.spawn with the config on stdin, killed after the timeout (src/run-process.ts). */
export const bunSpawner: PluginSpawner = runProcess;
