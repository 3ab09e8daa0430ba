// The command of `run` or `exec` in the foreground, shared by both (exec
// loads this, not run.ts and the create's flags).
import { catchSignals, prepareEnterHelper, spawnEnter, waitForeground } from "../client/enter.ts";

export { prepareEnterHelper };
import type { EnterTarget } from "../protocol.ts";
import { guardOutput } from "./_output.ts";
import type { ProcessOptions } from "./_process-flags.ts";

/**
 * Runs the command of `run` or `exec` in the foreground (on a pty with -t)
 * and returns its exit status; `onStart` learns its pid.
 */
export async function runForeground(
  target: EnterTarget & { cwd?: string },
  argv: string[],
  po: ProcessOptions,
  onStart: (pid: number) => Promise<void>,
): Promise<number> {
  const full = { ...target, workdir: po.workdir, user: po.user, ...(po.workdir ? { cwd: po.workdir } : {}) };
  await prepareEnterHelper();
  if (po.tty) {
    // The relay prints the command's output through process.stdout.
    guardOutput();
    // The pty code (and its libc calls) is loaded for -t only.
    const { spawnOnPty } = await import("../client/tty.ts");
    const pty = spawnOnPty(full, argv, po.env, { interactive: po.interactive });
    const started = onStart(pty.child.pid);
    const code = await pty.wait();
    await started;
    return code;
  }
  const signals = catchSignals();
  let child: Bun.Subprocess;
  try {
    child = spawnEnter(full, argv, po.env, { stdin: po.interactive ? "inherit" : "ignore", stdout: "inherit", stderr: "inherit" });
  } catch (e) {
    signals.release();
    throw e;
  }
  const started = onStart(child.pid);
  const code = await waitForeground(child, signals);
  await started;
  return code;
}
