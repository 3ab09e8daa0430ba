// Runs the enter step (the C helper, or the Bun __enter role:
// src/sandbox/enter-spawn.ts) in the foreground: stdio passes through,
// signals are forwarded, and the exit status comes back like a shell's
// (128+N on signal).
import type { EnterTarget } from "../protocol.ts";
import { type EarlyEnter, spawnEnterEarly, spawnEnterStep } from "../sandbox/enter-spawn.ts";
import { nodeOs } from "../lazy-node.ts";

export { prepareEnterHelper } from "../sandbox/enter-spawn.ts";
// Whether a foreground command that has exited made any process (src/cli/run.ts: its exit report's answer).
export { madeNothingSince } from "../sys/processes.ts";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

export interface EnterStdio {
  /** The caller's stdin (-i), /dev/null (podman's default), or an fd (a pty slave). */
  stdin: "inherit" | "ignore" | number;
  stdout: "inherit" | number;
  stderr: "inherit" | number;
  /** Passed on as fds 3, 4, ... (the enter child's errorFd). */
  extra?: number[];
}

export function spawnEnter(
  target: EnterTarget & { cwd?: string },
  argv: string[],
  env: Record<string, string | undefined> = {},
  stdio: EnterStdio = { stdin: "inherit", stdout: "inherit", stderr: "inherit" },
) {
  return spawnEnterStep(target, argv, { env, stdio: stdioList(stdio) });
}

/** spawnEnter's helper started before the sandbox exists, waiting for its options (src/sandbox/enter-spawn.ts spawnEnterEarly). */
export function spawnEnterAhead(
  argv: string[],
  env: Record<string, string | undefined>,
  stdio: EnterStdio,
  optionsPipe?: readonly [number, number],
): EarlyEnter | null {
  return spawnEnterEarly(argv, { env, stdio: stdioList(stdio), ...(optionsPipe ? { optionsPipe } : {}) });
}

/** Bun.spawn's stdio list: 0, 1, 2, then the extra fds as 3, 4, ... */
function stdioList(stdio: EnterStdio): ["inherit" | "ignore" | number, "inherit" | number, "inherit" | number, ...number[]] {
  return [stdio.stdin, stdio.stdout, stdio.stderr, ...(stdio.extra ?? [])];
}

export interface CaughtSignals {
  /** From now on the signals go to `child`, the ones caught before it existed first. */
  forward(child: Bun.Subprocess): void;
  release(): void;
}

/**
 * Catches the forwarded signals from now on. Call it before the command is
 * spawned: the enter helper execs the command within a millisecond, so a
 * signal sent once the command runs (a caller that waits for its first
 * output) could otherwise reach this process while its default action
 * still stands, and end it with the command left running. `ownSession`:
 * the child leads its own session (a pty's), so the terminal's ^C did not
 * reach it and SIGINT is forwarded too.
 */
export function catchSignals(opts: { ownSession?: boolean } = {}): CaughtSignals {
  let child: Bun.Subprocess | null = null;
  const caught: NodeJS.Signals[] = [];
  const send = (c: Bun.Subprocess, sig: NodeJS.Signals) => {
    try {
      c.kill(sig);
    } catch {}
  };
  const handlers = FORWARDED.map((sig) => {
    const h = () => {
      // A terminal already sent ^C to the whole foreground group.
      if (sig === "SIGINT" && process.stdin.isTTY && !opts.ownSession) return;
      if (child) send(child, sig);
      else caught.push(sig);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return {
    forward(c) {
      child = c;
      for (const sig of caught.splice(0)) send(c, sig);
    },
    release() {
      for (const [sig, h] of handlers) process.off(sig, h);
    },
  };
}

/** Waits for the child, forwarding the signals `signals` caught (catch them before the spawn: see catchSignals). */
export async function waitForeground(child: Bun.Subprocess, signals: CaughtSignals): Promise<number> {
  signals.forward(child);
  try {
    const code = await child.exited;
    return child.signalCode ? 128 + (nodeOs().constants.signals[child.signalCode as NodeJS.Signals] ?? 0) : code;
  } finally {
    signals.release();
  }
}
