// `--format` as podman's report package applies it: `\t` and `\n` typed in
// the shell become a tab and a newline, each row ends with a newline, and a
// `table ` prefix adds a header row (the field names, split at case changes
// and uppercased, e.g. {{.CreatedAt}} -> CREATED AT) and aligns the columns
// as Go's tabwriter does (minwidth 12, padding 2, blanks). Every row is
// rendered before anything is printed, so a failing template prints nothing.
//
// Pure: no system access.
import { compileTemplate } from "./template.ts";

/** fatih/camelcase as podman uses it: split at lower->upper, letter<->digit, and before the last capital of a run. */
export function splitCamel(name: string): string[] {
  return name.match(/[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^A-Za-z0-9]+/g) ?? [];
}

export function headerOf(field: string, overrides: Record<string, string> = {}): string {
  return overrides[field] ?? splitCamel(field).join(" ").toUpperCase();
}

/**
 * Go's text/tabwriter with podman's settings (minwidth 12, tabwidth 2,
 * padding 2, padchar ' ', no flags): a cell is text ended by a tab; a column
 * is a run of consecutive lines that have a cell there, as wide as its
 * widest cell plus the padding; the last cell of a line is not aligned.
 */
export function tabwrite(text: string, minWidth = 12, padding = 2): string {
  const lines = text.split("\n").map((l) => l.split("\t"));
  const widths: number[][] = lines.map(() => []);
  const width = (s: string) => [...s].length;
  const format = (from: number, to: number, col: number) => {
    for (let i = from; i < to; i++) {
      if (lines[i]!.length - 1 <= col) continue;
      // A block of lines that all have a cell in this column.
      let j = i;
      let w = minWidth;
      while (j < to && lines[j]!.length - 1 > col) {
        const cw = width(lines[j]![col]!) + padding;
        if (cw > w) w = cw;
        j++;
      }
      for (let k = i; k < j; k++) widths[k]![col] = w;
      format(i, j, col + 1);
      i = j - 1;
    }
  };
  format(0, lines.length, 0);
  return lines
    .map((cells, i) => cells.map((c, ci) => (ci < cells.length - 1 ? c + " ".repeat(Math.max(0, widths[i]![ci]! - width(c))) : c)).join(""))
    .join("\n");
}

export interface ReportOptions {
  /** Column names that differ from the split field name (podman: .ID -> CONTAINER ID). */
  headers?: Record<string, string>;
  /** The rows' template when the format is `table` alone. */
  defaultTable?: string;
  noHeading?: boolean;
}

/** podman's NormalizeFormat: the two-character escapes \t and \n become a tab and a newline. */
export function normalizeFormat(format: string): string {
  return format.replace(/\\t/g, "\t").replace(/\\n/g, "\n");
}

export function isTable(format: string): boolean {
  return format === "table" || format.startsWith("table ");
}

/** Renders rows with a Go template (or a `table ...` template); throws TemplateError before producing anything. */
export function renderReport(format: string, rows: readonly unknown[], opts: ReportOptions = {}): string {
  let f = normalizeFormat(format);
  const table = isTable(f);
  if (table) {
    f = f.slice("table".length).replace(/^ /, "");
    if (!f.trim()) f = normalizeFormat(opts.defaultTable ?? "").replace(/^table /, "");
  }
  if (!f.endsWith("\n")) f += "\n";
  const tpl = compileTemplate(f);
  let out = "";
  if (table && !opts.noHeading) out += tpl.header((name) => headerOf(name, opts.headers));
  for (const r of rows) out += tpl.render(r);
  return table ? tabwrite(out) : out;
}
