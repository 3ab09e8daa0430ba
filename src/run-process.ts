// Running one helper process to its end: argv, environment, stdin in, output
// and exit status out, killed after a deadline. Shared by the CNI plugins'
// spawner (src/net/cni/spawn.ts), podman's commands in the daemon
// (src/net/netavark/podman-netns.ts) and the CLI's podman probe
// (src/userns/podman-join.ts).

export interface ProcessRun {
  argv: string[];
  env: Record<string, string>;
  stdin: string;
  timeoutMs: number;
}

export interface ProcessResult {
  /** null when a signal ended it (the deadline's SIGKILL among them). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Bun.spawn with `stdin` written to it, its output read to the end, SIGKILLed after `timeoutMs`. */
export async function runProcess(req: ProcessRun): Promise<ProcessResult> {
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
    // A process that exits without reading (EPIPE) is reported by its exit status below.
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
}
