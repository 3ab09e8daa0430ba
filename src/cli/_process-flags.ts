// The flags of `run` and `exec` that shape the command's process, as podman
// users type them: -i, -t, -e/--env, --env-file, -w/--workdir, -u/--user.
// Parsing here is pure where it can be (env-file text, -e lookups) so the
// unit tests cover podman's documented forms.
import type { ArgsDef } from "citty";
import { BurrowError } from "../errors.ts";
import { resolveUser, type ProcessUser } from "../sandbox/user.ts";
import { bool, list, str, type Parsed } from "./_args.ts";
import { quote } from "../quote.ts";
import { isTerminal, statPath } from "../client/host.ts";
import { nodeFs } from "../lazy-node.ts";

export const processArgs = {
  interactive: { type: "boolean", alias: "i", description: "Keep stdin open: the command reads the caller's stdin (without -i it reads /dev/null)" },
  tty: { type: "boolean", alias: "t", description: "Give the command a pseudo-terminal (stdin must be a terminal unless -d)" },
  env: { type: "string", alias: "e", description: "Set an environment variable: K=V, or K to take it from the caller (repeatable; K* takes every match)" },
  "env-file": { type: "string", description: "Read K=V lines from a file (# comments; a bare K takes it from the caller; repeatable)" },
  workdir: { type: "string", alias: "w", description: "Working directory of the command (absolute path; default: the current directory)" },
  user: { type: "string", alias: "u", description: "USER[:GROUP] or UID[:GID] to run as, inside the sandbox's user namespace (default: root)" },
} as const satisfies ArgsDef;

export const processRepeatable = ["env", "env-file"];

export type Lookup = Record<string, string | undefined>;

/**
 * One -e value or env-file line into `out`, as podman reads them: K=V sets
 * (V verbatim, may be empty), a bare K copies the caller's value and sets
 * nothing when the caller has none, K* copies every variable starting with K.
 */
export function applyEnvEntry(out: Record<string, string>, entry: string, lookup: Lookup, where: string): void {
  const eq = entry.indexOf("=");
  const rawName = eq >= 0 ? entry.slice(0, eq) : entry;
  const name = rawName.replace(/^[ \t]+/, "");
  if (!name) throw new BurrowError(`invalid environment variable ${JSON.stringify(entry)}${where}: use K=V or K`, { kind: "bad-input" });
  if (/\s/.test(name)) throw new BurrowError(`environment variable ${JSON.stringify(name)}${where} contains whitespace`, { kind: "bad-input" });
  if (eq >= 0) {
    out[name] = entry.slice(eq + 1);
    return;
  }
  if (name.endsWith("*")) {
    const prefix = name.slice(0, -1);
    for (const [k, v] of Object.entries(lookup)) if (v !== undefined && k.startsWith(prefix)) out[k] = v;
    return;
  }
  const v = lookup[name];
  if (v !== undefined) out[name] = v;
}

/** podman's --env-file format: one entry a line, leading blanks ignored, `#` lines and empty lines skipped. */
export function parseEnvFile(text: string, lookup: Lookup, file = "the env file"): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^[ \t]+/, "");
    if (!line || line.startsWith("#")) return;
    applyEnvEntry(out, line, lookup, ` in ${file}:${i + 1}`);
  });
  return out;
}

/** The variables the user asked for: env files in order, then -e (which wins, as in podman). */
export function requestedEnv(envFlags: string[], envFiles: { path: string; text: string }[], lookup: Lookup): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of envFiles) Object.assign(out, parseEnvFile(f.text, lookup, f.path));
  for (const e of envFlags) applyEnvEntry(out, e, lookup, "");
  return out;
}

export interface ProcessOptions {
  interactive: boolean;
  tty: boolean;
  /** Variables set by -e/--env-file (over the inherited environment). */
  env: Record<string, string>;
  workdir?: string;
  user?: ProcessUser;
}

function readText(path: string, what: string): string {
  try {
    return nodeFs().readFileSync(path, "utf8");
  } catch (e) {
    throw new BurrowError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { kind: "bad-input" });
  }
}

/** Validates the process flags of run/exec in the CLI, before anything is created. */
export function processOptions(p: Parsed, opts: { detach: boolean; command: string }): ProcessOptions {
  const tty = bool(p, "tty");
  // podman only warns here ("The input device is not a TTY..."); burrow
  // refuses, see docs/decisions.md "-t without a terminal".
  if (tty && !opts.detach && !isTerminal(0))
    throw new BurrowError(
      `the input device is not a TTY: "burrow ${opts.command} -t" needs a terminal on stdin (drop -t, and use -i alone to feed it piped input)`,
      { kind: "bad-input" },
    );
  const files = list(p, "env-file").map((path) => ({ path, text: readText(path, "env file") }));
  const env = requestedEnv(list(p, "env"), files, process.env);
  const workdir = str(p, "workdir");
  if (workdir !== undefined) {
    if (!workdir.startsWith("/")) throw new BurrowError(`-w/--workdir ${quote(workdir)} must be an absolute path`, { kind: "bad-input" });
    let isDir = false;
    try {
      isDir = statPath(workdir)?.isDirectory() ?? false;
    } catch {}
    if (!isDir)
      throw new BurrowError(`-w/--workdir ${quote(workdir)} is not an existing directory (the sandbox sees the host's filesystem)`, { kind: "bad-input" });
  }
  const userSpec = str(p, "user");
  const user = userSpec === undefined ? undefined : resolveUser(userSpec, readText("/etc/passwd", "user database"), readText("/etc/group", "group database"));
  // A named user gets its home, as podman sets HOME, unless -e chose one.
  if (user?.home && env.HOME === undefined) env.HOME = user.home;
  return { interactive: bool(p, "interactive"), tty, env, workdir, user };
}
