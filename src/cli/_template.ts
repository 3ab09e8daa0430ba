// A small subset of Go templates for `--format`, enough for what podman users
// script: {{.A.B}}, {{.}}, {{json .A}}, {{index .A "key"}} and
// {{(index .A "key").B}}. Anything else is refused (exit 125), never echoed.
import { BurrowError } from "../errors.ts";

const SUPPORTED = `{{.Field.Path}}, {{json .Field}}, {{index .Field "key"}} or {{(index .Field "key").Field}}`;

function fail(action: string, why: string): never {
  throw new BurrowError(`template: cannot use {{${action}}}: ${why}; supported forms are ${SUPPORTED}`, { kind: "bad-input" });
}

function field(cur: unknown, key: string, action: string): unknown {
  if (cur === null || typeof cur !== "object" || !(key in (cur as object))) fail(action, `no field "${key}"`);
  return (cur as Record<string, unknown>)[key];
}

function tokenize(action: string): string[] {
  const tokens: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|\(|\)|\.[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*|[A-Za-z]+)\s*/y;
  let pos = 0;
  while (pos < action.length) {
    re.lastIndex = pos;
    const m = re.exec(action);
    if (!m) fail(action, `unexpected ${JSON.stringify(action.slice(pos).trim().slice(0, 10))}`);
    tokens.push(m[1]!);
    pos = re.lastIndex;
  }
  return tokens;
}

function evaluate(action: string, root: unknown): { value: unknown; json: boolean } {
  const tokens = tokenize(action);
  let i = 0;
  const path = (base: unknown, chain: string): unknown => {
    let cur = base;
    for (const key of chain.split(".").filter(Boolean)) cur = field(cur, key, action);
    return cur;
  };
  const operand = (): unknown => {
    const t = tokens[i++];
    if (t === undefined) fail(action, "an operand is missing");
    if (t === "(") {
      const v = expr();
      if (tokens[i++] !== ")") fail(action, "a ) is missing");
      // (expr).Field.Path
      if (tokens[i]?.startsWith(".") && tokens[i] !== ".") return path(v, tokens[i++]!);
      return v;
    }
    if (t.startsWith(".")) return path(root, t);
    if (t.startsWith('"')) return JSON.parse(t);
    fail(action, `unknown word "${t}"`);
  };
  const expr = (): unknown => {
    if (tokens[i] === "index") {
      i++;
      let v = operand();
      let n = 0;
      while (i < tokens.length && tokens[i] !== ")") {
        const key = operand();
        v = field(v, String(key), action);
        n++;
      }
      if (!n) fail(action, "index needs a key");
      return v;
    }
    return operand();
  };
  let json = false;
  if (tokens[0] === "json") {
    json = true;
    i = 1;
  }
  const value = expr();
  if (i !== tokens.length) fail(action, `unexpected "${tokens[i]}"`);
  return { value, json };
}

function show(v: unknown): string {
  if (v === null || v === undefined) return "<no value>";
  if (typeof v === "object") return Array.isArray(v) ? `[${v.map(show).join(" ")}]` : `map[${Object.entries(v as object).map(([k, x]) => `${k}:${show(x)}`).join(" ")}]`;
  return String(v);
}

export function renderTemplate(tpl: string, value: unknown): string {
  return tpl
    .replace(/\{\{(.*?)\}\}/g, (_, action: string) => {
      const { value: v, json } = evaluate(action.trim(), value);
      return json ? JSON.stringify(v) : show(v);
    })
    .replace(/\\n/g, "\n");
}
