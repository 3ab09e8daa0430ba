// Running one plugin process: the request/result shapes and the default
// spawner. Its own module so the __cni-runner role (its own small bundle)
// needs nothing else from the CNI runtime.

// The shapes are messages to and from the __cni-runner role: src/messages.ts.
import type { SpawnRequest, SpawnResult } from "./messages.ts";

export type { SpawnRequest, SpawnResult };
/** Runs one plugin process; replace it to run plugins some other way (tests, another namespace). */
export type PluginSpawner = (req: SpawnRequest) => Promise<SpawnResult>;

/** The default spawner: Bun.spawn with the config on stdin, killed after the timeout. */
export const bunSpawner: PluginSpawner = async (req) => {
  let timedOut = false;
  // stdin through a pipe we close, not a buffer: Bun hands a buffer over as
  // a memfd that stays open in the daemon until the Subprocess is collected
  // (seen by scripts/soak: up to a dozen extra fds after bridge cycles).
  const proc = Bun.spawn(req.argv, {
    env: req.env,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    proc.stdin.write(req.stdin);
    // A plugin that exits without reading (EPIPE) is reported by its exit status below.
    void Promise.resolve(proc.stdin.end()).catch(() => {});
  } catch {}
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
