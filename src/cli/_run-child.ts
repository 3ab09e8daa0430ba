import { constants } from "node:os";
// Runs an __enter child in the foreground: stdio passes through, signals are
// forwarded, and the exit status comes back like a shell's (128+N on signal).
import { ROLES, spawnRole } from "../roles.ts";
import type { EnterTarget } from "../protocol.ts";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

export function spawnEnter(target: EnterTarget & { cwd?: string }, argv: string[], env: Record<string, string | undefined> = {}) {
  return spawnRole(ROLES.enter, [JSON.stringify(target), "--", ...argv], {
    env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  });
}

export async function waitForeground(child: Bun.Subprocess): Promise<number> {
  const handlers = FORWARDED.map((sig) => {
    const h = () => {
      // A terminal already sent ^C to the whole foreground group.
      if (sig === "SIGINT" && process.stdin.isTTY) return;
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
