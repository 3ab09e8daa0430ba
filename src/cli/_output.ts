// The CLI's own stdout and stderr, made only when something is printed.
//
// Bun makes process.stdout and process.stderr on first touch, and making
// both cost ~2.5 ms of CPU per run here (docs/benchmarks.md, issue 17): a
// foreground `run` or `exec` prints nothing of its own on success (the
// command writes to the inherited fds), so those two leave them alone until
// they have something to say, and call guardOutput() first.
/** SIGPIPE's status (128 + 13), as a shell reports a pipeline member that lost its reader. */
export const EXIT_PIPE = 141;

export function isBrokenPipe(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === "EPIPE";
}

let guarded = false;

/**
 * Output into a closed pipe (`burrow events | head -1`) ends the command
 * quietly, like podman's SIGPIPE death, instead of printing a stack trace.
 * Makes both streams; once per process.
 */
export function guardOutput(): void {
  if (guarded) return;
  guarded = true;
  for (const stream of [process.stdout, process.stderr])
    stream.on("error", (e) => {
      if (isBrokenPipe(e)) process.exit(EXIT_PIPE);
      throw e;
    });
}

/** Has the CLI made its own stdout and stderr (guardOutput): then it may have output still queued. */
export function outputMade(): boolean {
  return guarded;
}

/** Commands whose success prints nothing of the CLI's own: they guard their output when they print. */
export const QUIET_COMMANDS: ReadonlySet<string> = new Set(["run", "exec"]);
