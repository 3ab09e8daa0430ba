// A small subset of Go templates for `--format`: {{.A.B}}, {{json .A}}, {{.}}.
import { BurrowError } from "../errors.ts";

function lookup(value: unknown, path: string): unknown {
  if (path === ".") return value;
  let cur: any = value;
  for (const key of path.replace(/^\./, "").split(".")) {
    if (cur === null || typeof cur !== "object" || !(key in cur)) throw new BurrowError(`template: no field "${key}" in ${path}`, { kind: "bad-input" });
    cur = cur[key];
  }
  return cur;
}

function show(v: unknown): string {
  if (v === null || v === undefined) return "<no value>";
  if (typeof v === "object") return Array.isArray(v) ? `[${v.map(show).join(" ")}]` : `map[${Object.entries(v as object).map(([k, x]) => `${k}:${show(x)}`).join(" ")}]`;
  return String(v);
}

export function renderTemplate(tpl: string, value: unknown): string {
  return tpl.replace(/\{\{\s*(json\s+)?(\.[A-Za-z0-9_.]*)\s*\}\}/g, (_, json, path) => {
    const v = lookup(value, path);
    return json ? JSON.stringify(v) : show(v);
  }).replace(/\\n/g, "\n");
}
