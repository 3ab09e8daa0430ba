// Strict parsing of a command's raw arguments against its citty ArgsDef:
// unknown flags are refused with the list of valid ones (citty accepts
// anything), flags listed in `repeatable` collect arrays, and for commands
// that run a program, parsing stops at `--` or the first positional.
import type { ArgsDef } from "citty";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";

/** Thrown by parseStrict for -h/--help among the flags; the top level prints usage. */
export class HelpRequested extends Error {}

export interface Parsed {
  flags: Record<string, string | boolean | string[]>;
  positionals: string[];
  /** Everything after `--` (or after the first positional with stopAtPositional). */
  rest: string[];
}

/** The positionals of a command that acts on named things; none is one line, exit 125. */
export function names(p: Parsed, command: string, what = "sandbox name or id"): string[] {
  if (!p.positionals.length) throw new BurrowError(`"burrow ${command}" needs at least one ${what}`, { kind: "bad-input" });
  return p.positionals;
}

export function parseStrict(raw: string[], def: ArgsDef, opts: { repeatable?: string[]; stopAtPositional?: boolean; command: string }): Parsed {
  const byName = new Map<string, string>();
  for (const [name, d] of Object.entries(def)) {
    if (d.type === "positional") continue;
    byName.set(name, name);
    const aliases = "alias" in d && d.alias ? (Array.isArray(d.alias) ? d.alias : [d.alias]) : [];
    for (const a of aliases) byName.set(a, name);
  }
  const flags: Parsed["flags"] = {};
  const positionals: string[] = [];
  let rest: string[] = [];
  const known = () =>
    Object.entries(def)
      .filter(([, d]) => d.type !== "positional")
      .map(([n, d]) => ("alias" in d && d.alias ? `-${d.alias} / --${n}` : `--${n}`))
      .join(", ");
  for (let i = 0; i < raw.length; i++) {
    const arg = raw[i]!;
    if (arg === "--") {
      rest = raw.slice(i + 1);
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      if (opts.stopAtPositional) {
        rest = raw.slice(i);
        break;
      }
      positionals.push(arg);
      continue;
    }
    if (arg === "--help" || arg === "-h") throw new HelpRequested(opts.command);
    const long = arg.startsWith("--");
    let key = long ? arg.slice(2) : arg.slice(1);
    let value: string | undefined;
    const eq = key.indexOf("=");
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    }
    let name = byName.get(key);
    // Combined short flags as cobra reads them: -it, -dit, -dp 80:80,
    // -p8080:80, -eK=V: booleans in a row, then one flag that takes the rest
    // (after an optional "=") or the next argument as its value.
    if (!name && !long) {
      const cluster = arg.slice(1);
      let i2 = 0;
      for (; i2 < cluster.length; i2++) {
        const c = cluster[i2]!;
        const n = byName.get(c);
        if (!n || def[n]!.type === "positional")
          throw new BurrowError(`unknown shorthand flag '${c}' in ${arg} for "burrow ${opts.command}": valid flags are ${known() || "none"}`, {
            kind: "bad-input",
          });
        if (def[n]!.type === "boolean") {
          flags[n] = true;
          continue;
        }
        name = n;
        break;
      }
      if (!name) continue;
      const tail = cluster.slice(i2 + 1);
      key = name;
      value = tail === "" ? undefined : tail.startsWith("=") ? tail.slice(1) : tail;
    }
    if (!name)
      throw new BurrowError(`unknown flag ${long ? "--" : "-"}${key} for "burrow ${opts.command}": valid flags are ${known() || "none"}`, {
        kind: "bad-input",
      });
    const d = def[name]!;
    if (d.type === "boolean") {
      if (value !== undefined && value !== "true" && value !== "false")
        throw new BurrowError(`flag --${name} takes true or false, not ${quote(value)}`, { kind: "bad-input" });
      flags[name] = value !== "false";
      continue;
    }
    if (value === undefined) {
      value = raw[++i];
      if (value === undefined) throw new BurrowError(`flag --${name} needs a value`, { kind: "bad-input" });
    }
    if (d.type === "enum" && d.options && !d.options.includes(value))
      throw new BurrowError(`flag --${name} does not accept ${quote(value)}: use one of ${d.options.join(", ")}`, { kind: "bad-input" });
    if (opts.repeatable?.includes(name)) ((flags[name] ??= []) as string[]).push(value);
    else flags[name] = value;
  }
  return { flags, positionals, rest };
}

export function str(p: Parsed, name: string): string | undefined {
  const val = p.flags[name];
  return typeof val === "string" ? val : undefined;
}
export function bool(p: Parsed, name: string): boolean {
  return p.flags[name] === true;
}
export function list(p: Parsed, name: string): string[] {
  const val = p.flags[name];
  return Array.isArray(val) ? val : [];
}
export function one(p: Parsed, what: string, command: string): string {
  if (p.positionals.length !== 1) throw new BurrowError(`"burrow ${command}" takes exactly one ${what}, got ${p.positionals.length}`, { kind: "bad-input" });
  return p.positionals[0]!;
}

/** --label KEY=VALUE values (KEY alone gives an empty value, as podman does). */
export function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const l of values) {
    const eq = l.indexOf("=");
    const key = eq < 0 ? l : l.slice(0, eq);
    if (!key) throw new BurrowError(`invalid --label ${quote(l)}: use KEY=VALUE or KEY`, { kind: "bad-input" });
    labels[key] = eq < 0 ? "" : l.slice(eq + 1);
  }
  return labels;
}
