// How Go sees JavaScript values in burrow's templates, and Go's fmt printing
// of them (%v, printf verbs). A plain object is a Go struct when it was made
// with goStruct() (or all its keys look like exported Go fields, as the
// podman-shaped views do); otherwise it is a map[string]interface {}, printed
// and ranged in sorted key order as Go does. Integers are int, other numbers
// float64, undefined is a missing value ("<no value>"), null is nil.
//
// Pure: no system access.

const structNames = new WeakMap<object, string>();
const maps = new WeakSet<object>();

/** Marks an object as a Go struct named `name` (shown in "can't evaluate field X in type NAME"). */
export function goStruct<T extends object>(value: T, name: string): T {
  structNames.set(value, name);
  return value;
}
/** Marks an object as a Go map even if its keys look like struct fields. */
export function goMap<T extends object>(value: T): T {
  maps.add(value);
  return value;
}

export type Kind = "invalid" | "nil" | "string" | "int" | "float" | "bool" | "slice" | "map" | "struct";

export function kindOf(v: unknown): Kind {
  if (v === undefined) return "invalid";
  if (v === null) return "nil";
  if (typeof v === "string") return "string";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "bigint") return "int";
  if (typeof v === "boolean") return "bool";
  if (Array.isArray(v)) return "slice";
  if (typeof v === "object") {
    if (maps.has(v)) return "map";
    if (structNames.has(v)) return "struct";
    const keys = Object.keys(v);
    return keys.length && keys.every((k) => /^[A-Z][A-Za-z0-9_]*$/.test(k)) ? "struct" : "map";
  }
  return "invalid";
}

export function typeName(v: unknown): string {
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      return "<nil>";
    case "string":
      return "string";
    case "int":
      return "int";
    case "float":
      return "float64";
    case "bool":
      return "bool";
    case "slice":
      return (v as unknown[]).length && (v as unknown[]).every((x) => typeof x === "string") ? "[]string" : "[]interface {}";
    case "map":
      return "map[string]interface {}";
    case "struct":
      return structNames.get(v as object) ?? "struct";
  }
}

/** Go's truth: false, 0, nil, and empty strings, slices and maps are false; structs are true. */
export function isTrue(v: unknown): boolean {
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      return false;
    case "string":
      return (v as string).length > 0;
    case "int":
    case "float":
      return v !== 0;
    case "bool":
      return v as boolean;
    case "slice":
      return (v as unknown[]).length > 0;
    case "map":
      return Object.keys(v as object).length > 0;
    case "struct":
      return true;
  }
}

export const sortedKeys = (o: object) => Object.keys(o).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * strconv.FormatFloat(f, 'g', prec, 64), fmt's %v and %g for floats: the
 * shortest digits (or prec significant ones, trailing zeros dropped), in
 * exponent form when the exponent is < -4 or >= the precision (6 for the
 * shortest form): 1e+06, 1.2345675e+06, 0.0001, 1e-05.
 */
export function formatFloat(f: number, prec?: number): string {
  if (Number.isNaN(f)) return "NaN";
  if (!Number.isFinite(f)) return f > 0 ? "+Inf" : "-Inf";
  if (f === 0) return Object.is(f, -0) ? "-0" : "0";
  const sign = f < 0 ? "-" : "";
  const abs = Math.abs(f);
  const [m, e] = (prec === undefined ? abs.toExponential() : abs.toExponential(Math.max(prec, 1) - 1)).split("e");
  const mant = m!.includes(".") ? m!.replace(/0+$/, "").replace(/\.$/, "") : m!;
  const exp = Number(e);
  const nd = mant.replace(".", "").length;
  let eprec = prec === undefined ? 6 : Math.max(prec, 1);
  if (prec !== undefined && eprec > nd && nd >= exp + 1) eprec = nd;
  if (prec === undefined) eprec = 6;
  if (exp < -4 || exp >= eprec) return `${sign}${mant}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  return sign + Number(`${mant}e${exp}`).toFixed(Math.max(nd - exp - 1, 0));
}

/** fmt's %v. */
export function show(v: unknown, top = true): string {
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      // A nil interface{} (JSON null) is no value to text/template's printer; fmt shows <nil> inside collections.
      return top ? "<no value>" : "<nil>";
    case "string":
      return v as string;
    case "int":
      return String(v);
    case "float":
      return formatFloat(v as number);
    case "bool":
      return String(v);
    case "slice":
      return `[${(v as unknown[]).map((x) => show(x, false)).join(" ")}]`;
    case "map":
      return `map[${sortedKeys(v as object)
        .map((k) => `${k}:${show((v as Record<string, unknown>)[k], false)}`)
        .join(" ")}]`;
    case "struct":
      return `{${Object.values(v as object)
        .map((x) => show(x, false))
        .join(" ")}}`;
  }
}

/** strconv.Quote. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    const esc: Record<number, string> = { 7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 92: "\\\\", 34: '\\"' };
    if (esc[c]) out += esc[c];
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else if (/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u.test(ch))
      out += c > 0xffff ? `\\U${c.toString(16).padStart(8, "0")}` : `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** Go's encoding/json as podman's `json` function uses it: compact, maps sorted, no HTML escaping. */
export function toJson(v: unknown): string {
  const conv = (x: unknown): unknown => {
    const k = kindOf(x);
    if (k === "invalid" || k === "nil") return null;
    if (k === "slice") return (x as unknown[]).map(conv);
    if (k === "map") return Object.fromEntries(sortedKeys(x as object).map((key) => [key, conv((x as Record<string, unknown>)[key])]));
    if (k === "struct") return Object.fromEntries(Object.entries(x as object).map(([key, val]) => [key, conv(val)]));
    return x;
  };
  return JSON.stringify(conv(v));
}

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Applies width, '-' and '0' flags to an already formatted value. */
function pad(body: string, f: Spec, numeric: boolean): string {
  const w = f.width ?? 0;
  const len = [...body].length;
  if (len >= w) return body;
  if (f.minus) return body + " ".repeat(w - len);
  if (f.zero && numeric) {
    const sign = /^[+\- ]/.test(body) ? body[0]! : "";
    return sign + "0".repeat(w - len) + body.slice(sign.length);
  }
  return " ".repeat(w - len) + body;
}

interface Spec {
  minus: boolean;
  plus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  width?: number;
  prec?: number;
}

function bad(verb: string, v: unknown): string {
  return `%!${verb}(${typeName(v)}=${show(v, false)})`;
}

function formatOne(verb: string, v: unknown, f: Spec): string {
  const k = kindOf(v);
  if (k === "slice" && verb !== "T" && verb !== "p")
    return pad(`[${(v as unknown[]).map((x) => formatOne(verb, x, { ...f, width: undefined })).join(" ")}]`, f, false);
  const sign = (n: number, s: string) => (n < 0 || Object.is(n, -0) ? s : f.plus ? `+${s}` : f.space ? ` ${s}` : s);
  switch (verb) {
    case "v":
      if (f.plus && k === "struct")
        return pad(
          `{${Object.entries(v as object)
            .map(([key, x]) => `${key}:${show(x, false)}`)
            .join(" ")}}`,
          f,
          false,
        );
      if (f.sharp && k === "string") return pad(goQuote(v as string), f, false);
      return pad(show(v, false), f, k === "int" || k === "float");
    case "T":
      return pad(typeName(v), f, false);
    case "s":
    case "q":
      if (k === "string") {
        let s = v as string;
        if (f.prec !== undefined) s = [...s].slice(0, f.prec).join("");
        return pad(verb === "q" ? (f.sharp && !s.includes("`") ? `\`${s}\`` : goQuote(s)) : s, f, false);
      }
      if (verb === "q" && k === "int") return pad(`'${String.fromCodePoint(v as number).replace(/'/g, "\\'")}'`, f, false);
      if (k === "bool" && verb === "s") return bad(verb, v);
      return bad(verb, v);
    case "d":
      if (k !== "int") return bad(verb, v);
      return pad(sign(v as number, String(v)), f, true);
    case "b":
    case "o":
    case "O":
    case "x":
    case "X": {
      const radix = verb === "b" ? 2 : verb === "x" || verb === "X" ? 16 : 8;
      if (k === "string" && radix === 16) {
        const hex = [...utf8(v as string)].map((b) => b.toString(16).padStart(2, "0")).join(f.space ? " " : "");
        return pad(verb === "X" ? hex.toUpperCase() : hex, f, false);
      }
      if (k !== "int") return bad(verb, v);
      const n = v as number;
      let digits = Math.abs(n).toString(radix);
      if (verb === "X") digits = digits.toUpperCase();
      const prefix = verb === "O" ? "0o" : f.sharp ? { 2: "0b", 8: "0", 16: verb === "X" ? "0X" : "0x" }[radix]! : "";
      return pad(sign(n, `${n < 0 ? "-" : ""}${prefix}${digits}`), f, true);
    }
    case "c":
      if (k !== "int") return bad(verb, v);
      return pad(String.fromCodePoint(v as number), f, false);
    case "U":
      if (k !== "int") return bad(verb, v);
      return pad(`U+${(v as number).toString(16).toUpperCase().padStart(4, "0")}`, f, false);
    case "t":
      if (k !== "bool") return bad(verb, v);
      return pad(String(v), f, false);
    case "e":
    case "E":
    case "f":
    case "F":
    case "g":
    case "G": {
      if (k !== "float" && k !== "int") return bad(verb, v);
      if (k === "int") return bad(verb, v);
      const n = v as number;
      let s: string;
      if (verb === "f" || verb === "F") s = Math.abs(n).toFixed(f.prec ?? 6);
      else if (verb === "e" || verb === "E") {
        const [m, e] = Math.abs(n)
          .toExponential(f.prec ?? 6)
          .split("e");
        s = `${m}e${Number(e) < 0 ? "-" : "+"}${String(Math.abs(Number(e))).padStart(2, "0")}`;
      } else s = formatFloat(Math.abs(n), f.prec);
      if (verb === "E" || verb === "G") s = s.toUpperCase();
      return pad(sign(n, `${n < 0 ? "-" : ""}${s}`), f, true);
    }
    default:
      return `%!${verb}(${typeName(v)}=${show(v, false)})`;
  }
}

/** fmt.Sprintf for the verbs a template reaches for. */
export function sprintf(format: string, args: unknown[]): string {
  let out = "";
  let ai = 0;
  const re = /%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.)?/gsy;
  let i = 0;
  while (i < format.length) {
    const pct = format.indexOf("%", i);
    if (pct < 0) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, pct);
    re.lastIndex = pct;
    const m = re.exec(format)!;
    i = re.lastIndex;
    const flags = m[1] ?? "";
    const f: Spec = {
      minus: flags.includes("-"),
      plus: flags.includes("+"),
      sharp: flags.includes("#"),
      space: flags.includes(" "),
      zero: flags.includes("0"),
    };
    const num = (s: string | undefined): number | undefined => {
      if (s === undefined) return undefined;
      if (s === "*") {
        const a = args[ai++];
        return typeof a === "number" ? a : undefined;
      }
      return s === "" ? 0 : Number(s);
    };
    f.width = num(m[2]);
    if (f.width !== undefined && f.width < 0) {
      f.minus = true;
      f.width = -f.width;
    }
    f.prec = num(m[3]);
    const verb = m[4];
    if (verb === undefined) {
      out += "%!(NOVERB)";
      break;
    }
    if (verb === "%") {
      out += "%";
      continue;
    }
    if (ai >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    out += formatOne(verb, args[ai++], f);
  }
  if (ai < args.length)
    out += `%!(EXTRA ${args
      .slice(ai)
      .map((a) => `${typeName(a)}=${show(a, false)}`)
      .join(", ")})`;
  return out;
}

/** fmt.Sprint: a space between operands when neither is a string. */
export function sprint(args: unknown[]): string {
  let out = "";
  args.forEach((a, i) => {
    if (i > 0 && typeof a !== "string" && typeof args[i - 1] !== "string") out += " ";
    out += show(a, false);
  });
  return out;
}
