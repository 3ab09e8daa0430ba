// The command of `run` or `exec` in the foreground, shared by both (exec
// loads this, not run.ts and the create's flags).
import { type CaughtSignals, catchSignals, madeNothingSince, prepareEnterHelper, spawnEnter, spawnEnterAhead, waitForeground } from "../client/enter.ts";
import type { EarlyEnter } from "../sandbox/enter-spawn.ts";

export { madeNothingSince, prepareEnterHelper };
import type { EnterTarget } from "../protocol.ts";
import { foregroundRequest } from "../enter-messages.ts";
import { guardOutput, outputMade } from "./_output.ts";
import { exitLeavingTeardown, prepareExit } from "../client/host.ts";
import { logMade } from "../log.ts";

export { prepareExit };
import type { ProcessOptions } from "./_process-flags.ts";
import { closeEnds } from "../client/enter-fifo.ts";

/** A foreground command's enter step started ahead of the daemon's reply, and the signals caught for it since before its spawn. */
export interface EarlyStart {
  enter: EarlyEnter;
  signals: CaughtSignals;
}

/**
 * Starts the command's enter step while the daemon still makes the sandbox:
 * the helper waits for its options (src/sandbox/enter-spawn.ts
 * spawnEnterEarly), so the spawn is off the path from the reply to the
 * command (issue 17). null where it cannot be: -t (the pty comes with the
 * spawn), --accelerate (its fds come with the reply), no enter helper.
 * Signals are caught from here on and go to the helper: a ^C while the
 * daemon answers ends the command (130) instead of the CLI, so the sandbox
 * is still reported and removed. `optionsPipe` (run.ts: the ends of the
 * FIFO the daemon may write the options into): what the helper reads its
 * options from, taken over here; without it, a pipe of its own.
 */
export async function startAhead(
  argv: string[],
  po: ProcessOptions,
  accelerate: boolean,
  optionsPipe: readonly [number, number] | null = null,
): Promise<EarlyStart | null> {
  const unused = () => {
    closeEnds(optionsPipe);
    return null;
  };
  if (po.tty || accelerate) return unused();
  if ((await prepareEnterHelper()) === null) return unused();
  const signals = catchSignals();
  let enter: EarlyEnter | null;
  try {
    enter = spawnEnterAhead(argv, po.env, commandStdio(po), optionsPipe ?? undefined);
  } catch (e) {
    signals.release();
    throw e;
  }
  if (!enter) {
    signals.release();
    return null;
  }
  signals.forward(enter.child);
  return { enter, signals };
}

/** Calls a start ahead off (the create failed, or its reply needs another spawn) and waits for the helper to end. */
export async function cancelAhead(early: EarlyStart): Promise<void> {
  early.enter.cancel();
  await early.enter.child.exited;
  early.signals.release();
}

/** The command's stdio: the caller's, and its stdin only with -i (podman's default is /dev/null). */
function commandStdio(po: ProcessOptions) {
  return { stdin: po.interactive ? "inherit" : "ignore", stdout: "inherit", stderr: "inherit" } as const;
}

/** Sends a start ahead its options (null: the daemon did); one it could not send to ends here, its signals given back. */
async function goAhead(early: EarlyStart, target: (EnterTarget & { cwd?: string }) | null): Promise<{ child: Bun.Subprocess; signals: CaughtSignals }> {
  try {
    early.enter.go(target);
  } catch (e) {
    await cancelAhead(early);
    throw e;
  }
  return { child: early.enter.child, signals: early.signals };
}

/** Spawns the enter step now, with its signals caught first (catchSignals says why). */
function spawnNow(target: EnterTarget & { cwd?: string }, argv: string[], po: ProcessOptions): { child: Bun.Subprocess; signals: CaughtSignals } {
  const signals = catchSignals();
  try {
    return { child: spawnEnter(target, argv, po.env, commandStdio(po)), signals };
  } catch (e) {
    signals.release();
    throw e;
  }
}

/**
 * Runs the command of `run` or `exec` in the foreground (on a pty with -t)
 * and returns its exit status; `onStart` learns its pid. `early`: its enter
 * step, started ahead (startAhead). `target` null: the daemon wrote that
 * step's options itself (the create's `entered`), and nothing here needs
 * the target (run.ts leaves it unchecked then).
 */
export async function runForeground(
  target: (EnterTarget & { cwd?: string }) | null,
  argv: string[],
  po: ProcessOptions,
  onStart: (pid: number) => Promise<void>,
  early: EarlyStart | null = null,
): Promise<number> {
  if (target === null) {
    if (!early) throw new Error("internal: a foreground command without its target needs the enter step the daemon sent its options to");
    return foregroundChild(await goAhead(early, null), onStart);
  }
  const full = foregroundRequest(target, po);
  if (early && (full.tty || full.accelerate)) {
    await cancelAhead(early);
    early = null;
  }
  if (!early) await prepareEnterHelper();
  if (!early && po.tty) {
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
  return foregroundChild(early ? await goAhead(early, full) : spawnNow(full, argv, po), onStart);
}

/** Waits for a foreground command spawned without a pty; `onStart` learns its pid first. */
async function foregroundChild(
  { child, signals }: { child: Bun.Subprocess; signals: CaughtSignals },
  onStart: (pid: number) => Promise<void>,
): Promise<number> {
  const started = onStart(child.pid);
  const code = await waitForeground(child, signals);
  await started;
  return code;
}

/**
 * Ends a foreground run or exec with the command's status. When the CLI
 * printed nothing of its own (nothing can be queued for a pipe), it exits
 * at once and leaves its address space's teardown, ~1.3 ms of the kernel's
 * inside exit_group, to a child sharing it (src/sys/exit.ts); otherwise
 * Bun's own exit writes out what is queued first.
 */
export function finishForeground(code: number): void {
  if (!outputMade() && !logMade()) exitLeavingTeardown(code);
  process.exitCode = code;
}
