// What every listing command shares: --format (json, a Go template, or
// `table ...`), --filter KEY=VALUE, and podman's time forms for --since/--until.
// A bad template, filter or time is one line and exit 125, and nothing is
// printed: every row is rendered before the first byte goes out.
import { BurrowError } from "../errors.ts";
import { renderReport, type ReportOptions } from "../format/report.ts";
import { goMap, goStruct, TemplateError } from "../format/template.ts";
import { printJson } from "./_shared.ts";
import { quote } from "../quote.ts";

/** Renders rows with a template; template errors become bad input (exit 125). */
export function render(format: string, rows: readonly unknown[], opts: ReportOptions = {}): string {
  try {
    return renderReport(format, rows, opts);
  } catch (e) {
    if (e instanceof TemplateError) throw new BurrowError(e.message, { kind: "bad-input" });
    throw e;
  }
}

/** --format json prints `json`; anything else (or the default table) goes through the template engine. */
export function printRows(format: string | undefined, rows: readonly unknown[], json: unknown, opts: ReportOptions & { defaultTable: string }): void {
  if (format === "json") {
    printJson(json);
    return;
  }
  const text = render(format ?? "table", rows, opts);
  process.stdout.write(text);
}

/**
 * Marks a podman-shaped view for the template engine: objects become Go
 * structs named after their path (inspect.Sandbox, inspect.SandboxState...),
 * except the fields listed in `maps` (Labels, Ports...), which are maps.
 */
export function goView<T>(value: T, name: string, maps: readonly string[] = []): T {
  const walk = (v: unknown, type: string): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x, type);
      return;
    }
    if (v === null || typeof v !== "object") return;
    goStruct(v, type);
    for (const [k, x] of Object.entries(v)) {
      if (maps.includes(k) && x && typeof x === "object" && !Array.isArray(x)) goMap(x);
      else walk(x, `${type}${k}`);
    }
  };
  walk(value, name);
  return value;
}

export type Filters = Map<string, string[]>;

/** --filter KEY=VALUE values: same key ORs, different keys AND (podman's rule). */
export function parseFilters(raw: readonly string[], valid: readonly string[], command: string): Filters {
  const out: Filters = new Map();
  for (const f of raw) {
    const eq = f.indexOf("=");
    if (eq <= 0) throw new BurrowError(`invalid filter ${quote(f)}: use KEY=VALUE with KEY one of ${valid.join(", ")}`, { kind: "bad-input" });
    const key = f.slice(0, eq);
    if (!valid.includes(key))
      throw new BurrowError(`invalid filter ${quote(key)} for "burrow ${command}": valid filters are ${valid.join(", ")}`, { kind: "bad-input" });
    (out.get(key) ?? out.set(key, []).get(key)!).push(f.slice(eq + 1));
  }
  return out;
}

/** True when every filter key has at least one value that `test` accepts. */
export function matches(filters: Filters, test: (key: string, value: string) => boolean): boolean {
  for (const [key, values] of filters) if (!values.some((v) => test(key, v))) return false;
  return true;
}

/** label=KEY or label=KEY=VALUE against a label map. */
export function labelMatches(labels: Record<string, string> | undefined, want: string): boolean {
  const eq = want.indexOf("=");
  const key = eq < 0 ? want : want.slice(0, eq);
  if (!labels || !Object.hasOwn(labels, key)) return false;
  return eq < 0 || labels[key] === want.slice(eq + 1);
}

/** podman's name filter: a regular expression matched anywhere in the name. */
export function nameMatches(name: string, pattern: string): boolean {
  try {
    return new RegExp(pattern).test(name);
  } catch {
    throw new BurrowError(`invalid filter name=${pattern}: not a regular expression`, { kind: "bad-input" });
  }
}

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * podman's --since/--until forms: a Go duration before now (10m, 1h30m,
 * 500ms), an RFC 3339 time or date (2026-12-01T16:00:00Z, 2026-12-01), or
 * Unix seconds (1764600000, 1764600000.5). Returns milliseconds since the epoch.
 */
export function parseTime(raw: string, flag: string, now = Date.now()): number {
  const bad = () =>
    new BurrowError(`invalid ${flag} ${quote(raw)}: use a duration (10m, 1h30m), an RFC 3339 time (2006-01-02T15:04:05Z07:00) or Unix seconds`, {
      kind: "bad-input",
    });
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(raw)) {
    let ms = 0;
    for (const m of raw.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
    return now - ms;
  }
  if (/^\d+(\.\d+)?$/.test(raw)) return Number(raw) * 1000;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(raw);
  if (!m) throw bad();
  const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "", zone] = m;
  if (Number(mo) < 1 || Number(mo) > 12 || Number(d) < 1 || Number(d) > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) throw bad();
  // Without a zone podman reads the time as local time.
  const t = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${frac}${zone ?? ""}`);
  if (Number.isNaN(t)) throw bad();
  return t;
}

/** "3 minutes ago", as podman's CREATED column (go-units HumanDuration). */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 1) return "Less than a second ago";
  if (s < 60) return `${s} seconds ago`;
  const min = Math.round(s / 60);
  if (min === 1) return "About a minute ago";
  if (min < 60) return `${min} minutes ago`;
  const h = Math.round(s / 3600);
  if (h === 1) return "About an hour ago";
  if (h < 48) return `${h} hours ago`;
  return `${Math.round(h / 24)} days ago`;
}
