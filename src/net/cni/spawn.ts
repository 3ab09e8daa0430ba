// Running one plugin process: the request/result shapes and the default
// spawner. Its own module so the __cni-runner role (its own small bundle)
// needs nothing else from the CNI runtime.

// The shapes are messages to and from the __cni-runner role: src/messages.ts.
import type { SpawnRequest, SpawnResult } from "../../messages.ts";

export type { SpawnRequest, SpawnResult };
/** Runs one plugin process; replace it to run plugins some other way (tests, another namespace). */
export type PluginSpawner = (req: SpawnRequest) => Promise<SpawnResult>;

/** The default spawner: Bun.spawn with the config on stdin, killed after the timeout. */
export const bunSpawner: PluginSpawner = async (req) => {
  let timedOut = false;
  const proc = Bun.spawn(req.argv, {
    env: req.env,
    stdin: new TextEncoder().encode(req.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, req.timeoutMs);
  try {
    const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { exitCode: proc.signalCode ? null : exitCode, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
  }
};
