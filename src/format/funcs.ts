// The functions a template may call: Go's text/template builtins (and/or
// excepted: the executor evaluates those lazily) and podman's report
// functions (containers/common report.DefaultFuncs). Pure: no system access.
import { isTrue, kindOf, show, sprint, sprintf, toJson, typeName } from "./values.ts";

/** A function refused its arguments: the executor words it as Go does ("error calling NAME: ..."). */
export class FuncError extends Error {}

function wantString(v: unknown): string {
  if (typeof v !== "string") throw new FuncError(`wrong type for value; expected string; got ${typeName(v)}`);
  return v;
}
function wantInt(v: unknown): number {
  if (kindOf(v) !== "int") throw new FuncError(`wrong type for value; expected int; got ${typeName(v)}`);
  return v as number;
}

type Basic = "string" | "int" | "float" | "bool";
function basic(v: unknown, what: string): Basic {
  const k = kindOf(v);
  if (k === "string" || k === "int" || k === "float" || k === "bool") return k;
  if (k === "invalid" || k === "nil") throw new FuncError(`invalid type for comparison`);
  throw new FuncError(what === "eq" ? `non-comparable type ${show(v, false)}: ${typeName(v)}` : `invalid type for comparison`);
}
const numeric = (k: Basic) => k === "int" || k === "float";
function eq(a: unknown, ...rest: unknown[]): boolean {
  if (!rest.length) throw new FuncError(`missing argument for comparison`);
  const ka = basic(a, "eq");
  for (const b of rest) {
    const kb = basic(b, "eq");
    if (ka !== kb && !(numeric(ka) && numeric(kb))) throw new FuncError(`incompatible types for comparison`);
    if (a === b) return true;
  }
  return false;
}
function lt(a: unknown, b: unknown): boolean {
  const ka = basic(a, "lt");
  const kb = basic(b, "lt");
  if (ka === "bool" || kb === "bool") throw new FuncError(`invalid type for comparison`);
  if (ka !== kb && !(numeric(ka) && numeric(kb))) throw new FuncError(`incompatible types for comparison`);
  return (a as number) < (b as number);
}

function index(item: unknown, ...keys: unknown[]): unknown {
  let v = item;
  for (const key of keys) {
    const k = kindOf(v);
    if (k === "invalid" || k === "nil") throw new FuncError(`index of untyped nil`);
    if (k === "slice" || k === "string") {
      if (kindOf(key) !== "int") throw new FuncError(`cannot index slice/array with type ${typeName(key)}`);
      const n = key as number;
      const len = k === "string" ? new TextEncoder().encode(v as string).length : (v as unknown[]).length;
      if (n < 0 || n >= len) throw new FuncError(`index out of range: ${n}`);
      v = k === "string" ? new TextEncoder().encode(v as string)[n] : (v as unknown[])[n];
    } else if (k === "map") {
      if (typeof key !== "string") throw new FuncError(`value has type ${typeName(key)}; should be string`);
      v = Object.hasOwn(v as object, key) ? (v as Record<string, unknown>)[key] : undefined;
    } else throw new FuncError(`can't index item of type ${typeName(v)}`);
  }
  return v;
}

function slice(item: unknown, ...idx: unknown[]): unknown {
  const k = kindOf(item);
  if (k !== "string" && k !== "slice") throw new FuncError(`can't slice item of type ${typeName(item)}`);
  if (k === "string" && idx.length > 2) throw new FuncError(`cannot 3-index slice a string`);
  const len = k === "string" ? (item as string).length : (item as unknown[]).length;
  const ns = idx.map((x) => {
    if (kindOf(x) !== "int") throw new FuncError(`cannot index slice/array with type ${typeName(x)}`);
    if ((x as number) < 0 || (x as number) > len) throw new FuncError(`index out of range: ${x}`);
    return x as number;
  });
  const [from = 0, to = len] = ns;
  if (from > to) throw new FuncError(`invalid slice index: ${from} > ${to}`);
  return k === "string" ? (item as string).slice(from, to) : (item as unknown[]).slice(from, to);
}

function len(v: unknown): number {
  const k = kindOf(v);
  if (k === "string") return new TextEncoder().encode(v as string).length;
  if (k === "slice") return (v as unknown[]).length;
  if (k === "map") return Object.keys(v as object).length;
  throw new FuncError(`len of type ${typeName(v)}`);
}

type Func = (...args: unknown[]) => unknown;

/** Go's builtins (and/or are evaluated lazily by the executor) and podman's report functions. */
export const FUNCS: Record<string, Func> = {
  not: (a) => !isTrue(a),
  eq,
  ne: (a, b) => !eq(a, b),
  lt,
  le: (a, b) => lt(a, b) || eq(a, b),
  gt: (a, b) => !lt(a, b) && !eq(a, b),
  ge: (a, b) => !lt(a, b),
  index,
  slice,
  len,
  print: (...a) => sprint(a),
  println: (...a) => `${a.map((x) => show(x, false)).join(" ")}\n`,
  printf: (f, ...a) => sprintf(wantString(f), a),
  html: (...a) => sprint(a).replace(/[&<>"'\0]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;", "\0": "\uFFFD" })[c]!),
  urlquery: (...a) =>
    encodeURIComponent(sprint(a))
      .replace(/%20/g, "+")
      .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
  // podman's additions (containers/common report.DefaultFuncs).
  json: (v) => toJson(v),
  upper: (s) => wantString(s).toUpperCase(),
  lower: (s) => wantString(s).toLowerCase(),
  title: (s) => wantString(s).replace(/(^|[^\p{L}\p{N}_'])(\p{L})/gu, (_, pre: string, c: string) => pre + c.toUpperCase()),
  join: (list, sep) => {
    if (!Array.isArray(list) || !list.every((x) => typeof x === "string"))
      throw new FuncError(`wrong type for value; expected []string; got ${typeName(list)}`);
    return list.join(wantString(sep));
  },
  split: (s, sep) => {
    const str = wantString(s);
    const by = wantString(sep);
    return by === "" ? [...str] : str.split(by);
  },
  truncate: (s, n) => {
    const str = wantString(s);
    const k = wantInt(n);
    return str.length < k ? str : str.slice(0, k);
  },
  pad: (s, prefix, suffix) => " ".repeat(wantInt(prefix)) + wantString(s) + " ".repeat(wantInt(suffix)),
};
export const NAMES: ReadonlySet<string> = new Set([...Object.keys(FUNCS), "and", "or"]);
