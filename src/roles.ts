// burrow's internal roles (STYLE.md #1): the one binary re-exec'd with a
// role name first. src/main.ts dispatches on ROLES; spawnRole is the one
// way to start one, so argv0, the role name and the single-thread
// environment are never built by hand.
import { roleEnv, selfCommand, SELF_ARGV0 } from "./sys/env.ts";

export const ROLES = {
  /** Keeps the rootless user+mount namespaces (single-threaded until exec). */
  holder: "__holder",
  /** Joins the holder's namespaces and execs the daemon (single-threaded). */
  launch: "__launch",
  /** The per-user daemon. */
  daemon: "__daemon",
  /** Joins a sandbox and execs a command (single-threaded). */
  enter: "__enter",
  /** Runs CNI plugins inside the rootless CNI namespace (starts single-threaded). */
  cniRunner: "__cni-runner",
} as const;

export type Role = (typeof ROLES)[keyof typeof ROLES];

/** The argv that starts `role` with `args` in this same burrow. */
export function roleArgv(role: Role, args: string[] = []): string[] {
  return [...selfCommand(), role, ...args];
}

/**
 * Starts `role` as a child: argv0 is burrow's path (ps shows it), the
 * environment is process.env plus `env` with the single-thread JSC settings
 * (DESIGN.md) added back.
 */
export function spawnRole<
  const In extends Bun.SpawnOptions.Writable = "ignore",
  const Out extends Bun.SpawnOptions.Readable = "pipe",
  const Err extends Bun.SpawnOptions.Readable = "inherit",
>(
  role: Role,
  args: string[],
  options: Omit<Bun.SpawnOptions.SpawnOptions<In, Out, Err>, "argv0" | "env"> & { env?: Record<string, string | undefined> },
): Bun.Subprocess<In, Out, Err> {
  const { env, ...rest } = options;
  return Bun.spawn<In, Out, Err>(roleArgv(role, args), { ...rest, argv0: SELF_ARGV0, env: roleEnv(env) });
}
