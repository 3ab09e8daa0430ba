// The CLI's command tree as plain data, read from the citty definitions
// (src/cli/index.ts and each command file): the one source that help, the
// man pages (scripts/packaging/man.ts) and the shell completions
// (src/cli/completion.ts) are made from.
import type { ArgsDef, CommandDef } from "citty";

export interface FlagSpec {
  name: string;
  aliases: string[];
  /** boolean flags take no value */
  takesValue: boolean;
  description: string;
  valueHint?: string;
}

/** What a command's positional arguments name, for completing them. */
export type Operand = "sandbox" | "network" | "network sandbox" | "command" | "shell" | "none";

export interface CommandSpec {
  /** "run", "network create" */
  path: string;
  name: string;
  description: string;
  flags: FlagSpec[];
  operand: Operand;
  /** Other names of this command (network ls = list). */
  aliases: string[];
  subcommands: CommandSpec[];
}

// The commands whose operands are sandbox or network names. citty has no
// field for this; the table sits here so the completions and man pages agree.
const OPERANDS: Record<string, Operand> = {
  exec: "sandbox",
  inspect: "sandbox",
  stop: "sandbox",
  start: "sandbox",
  restart: "sandbox",
  wait: "sandbox",
  "generate systemd": "sandbox",
  rm: "sandbox",
  logs: "sandbox",
  port: "sandbox",
  stats: "sandbox",
  run: "command",
  unshare: "command",
  completion: "shell",
  "network inspect": "network",
  "network rm": "network",
  "network connect": "network sandbox",
  "network disconnect": "network sandbox",
  "network reload": "sandbox",
};

type Resolvable<T> = T | (() => T | Promise<T>) | Promise<T>;
async function resolve<T>(x: Resolvable<T>): Promise<T> {
  return typeof x === "function" ? await (x as () => T | Promise<T>)() : await x;
}

function flagsOf(args: ArgsDef | undefined): FlagSpec[] {
  const out: FlagSpec[] = [];
  for (const [name, d] of Object.entries(args ?? {})) {
    if (d.type === "positional") continue;
    const alias = "alias" in d && d.alias ? (Array.isArray(d.alias) ? d.alias : [d.alias]) : [];
    out.push({
      name,
      aliases: alias,
      takesValue: d.type !== "boolean",
      description: d.description ?? "",
      ...("valueHint" in d && d.valueHint ? { valueHint: String(d.valueHint) } : {}),
    });
  }
  return out;
}

async function specOf(def: CommandDef<any>, path: string, name: string): Promise<CommandSpec> {
  const meta = (await resolve(def.meta ?? {})) as { description?: string };
  const args = (await resolve(def.args ?? {})) as ArgsDef;
  const subs = (await resolve(def.subCommands ?? {})) as Record<string, Resolvable<CommandDef<any>>>;
  const subcommands: CommandSpec[] = [];
  const seen = new Map<CommandDef<any>, CommandSpec>();
  for (const [subName, sub] of Object.entries(subs)) {
    const subDef = await resolve(sub);
    const known = seen.get(subDef);
    if (known) {
      known.aliases.push(subName);
      continue;
    }
    const spec = await specOf(subDef, path ? `${path} ${subName}` : subName, subName);
    seen.set(subDef, spec);
    subcommands.push(spec);
  }
  return {
    path,
    name,
    description: meta.description ?? "",
    flags: flagsOf(args),
    operand: OPERANDS[path] ?? "none",
    aliases: [],
    subcommands,
  };
}

/** The whole tree, from the root command (burrow). */
export async function commandTree(root?: CommandDef<any>): Promise<CommandSpec> {
  const def = root ?? (await import("./index.ts")).main;
  return specOf(def, "", "burrow");
}

/** Every command, depth first, root excluded. */
export function allCommands(tree: CommandSpec): CommandSpec[] {
  return tree.subcommands.flatMap((c) => [c, ...allCommands(c)]);
}
