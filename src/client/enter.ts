import { constants } from "node:os";
// Runs the enter step (the C helper, or the Bun __enter role:
// src/sandbox/enter-spawn.ts) in the foreground: stdio passes through,
// signals are forwarded, and the exit status comes back like a shell's
// (128+N on signal).
import type { EnterTarget } from "../protocol.ts";
import { spawnEnterStep } from "../sandbox/enter-spawn.ts";

export { prepareEnterHelper } from "../sandbox/enter-spawn.ts";

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
  return spawnEnterStep(target, argv, {
    env,
    stdio: [stdio.stdin, stdio.stdout, stdio.stderr, ...(stdio.extra ?? [])],
  });
}

/**
 * Waits for the child, forwarding signals. `ownSession`: the child leads its
 * own session (a pty's), so the terminal's ^C did not reach it and SIGINT is
 * forwarded too.
 */
export async function waitForeground(child: Bun.Subprocess, opts: { ownSession?: boolean } = {}): Promise<number> {
  const handlers = FORWARDED.map((sig) => {
    const h = () => {
      // A terminal already sent ^C to the whole foreground group.
      if (sig === "SIGINT" && process.stdin.isTTY && !opts.ownSession) return;
      try {
        child.kill(sig);
      } catch {}
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  const code = await child.exited;
  for (const [sig, h] of handlers) process.off(sig, h);
  return child.signalCode ? 128 + (constants.signals[child.signalCode as NodeJS.Signals] ?? 0) : code;
}
