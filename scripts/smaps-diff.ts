// What grew between two copies of a process's /proc/PID/smaps (for example
// two samples of `scripts/soak --smaps DIR`): resident and anonymous KiB
// per mapping, the mappings that appeared or went, largest change first.
//
//   bun scripts/smaps-diff.ts A.smaps B.smaps [--top N]
//
// Mappings are matched by start address (a mapping that grew in place keeps
// it); anonymous ones are labelled by their size, so a new thread stack
// (8 MiB + a guard page) or a new 64 MiB malloc arena is easy to spot.
import { readFileSync } from "node:fs";

interface Mapping {
  start: string;
  end: string;
  perms: string;
  path: string;
  sizeKiB: number;
  rssKiB: number;
  anonKiB: number;
}

export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let cur: Mapping | null = null;
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      cur = { start: head[1]!, end: head[2]!, perms: head[3]!, path: head[4] ?? "", sizeKiB: 0, rssKiB: 0, anonKiB: 0 };
      out.push(cur);
      continue;
    }
    const field = /^(\w+):\s+(\d+) kB/.exec(line);
    if (!field || !cur) continue;
    if (field[1] === "Size") cur.sizeKiB = Number(field[2]);
    else if (field[1] === "Rss") cur.rssKiB = Number(field[2]);
    else if (field[1] === "Anonymous") cur.anonKiB = Number(field[2]);
  }
  return out;
}

function label(m: Mapping): string {
  return `${m.start}-${m.end} ${m.perms} ${m.path || "[anon]"} (${m.sizeKiB} KiB)`;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const topAt = args.indexOf("--top");
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
  if (args.length !== 2 || !Number.isInteger(top) || top < 1) {
    console.error("usage: bun scripts/smaps-diff.ts A.smaps B.smaps [--top N]");
    process.exit(2);
  }
  const [a, b] = args.map((p) => parseSmaps(readFileSync(p!, "utf8")));
  const before = new Map(a!.map((m) => [m.start, m]));
  const after = new Map(b!.map((m) => [m.start, m]));
  const rows: { what: string; rss: number; anon: number }[] = [];
  for (const m of b!) {
    const o = before.get(m.start);
    const tag = !o ? "new  " : o.end !== m.end ? "resized " : "";
    rows.push({ what: tag + label(m), rss: m.rssKiB - (o?.rssKiB ?? 0), anon: m.anonKiB - (o?.anonKiB ?? 0) });
  }
  for (const o of a!) if (!after.has(o.start)) rows.push({ what: `gone ${label(o)}`, rss: -o.rssKiB, anon: -o.anonKiB });
  const sum = (ms: Mapping[], k: "rssKiB" | "anonKiB") => ms.reduce((s, m) => s + m[k], 0);
  console.log(
    `Rss ${sum(a!, "rssKiB")} -> ${sum(b!, "rssKiB")} KiB (${sum(b!, "rssKiB") - sum(a!, "rssKiB")}), Anonymous ${sum(a!, "anonKiB")} -> ${sum(b!, "anonKiB")} KiB (${sum(b!, "anonKiB") - sum(a!, "anonKiB")}), mappings ${a!.length} -> ${b!.length}`,
  );
  rows.sort((x, y) => Math.abs(y.rss) - Math.abs(x.rss));
  for (const r of rows.slice(0, top))
    if (r.rss !== 0 || r.what.startsWith("new") || r.what.startsWith("gone"))
      console.log(`${String(r.rss).padStart(7)} rss ${String(r.anon).padStart(7)} anon  ${r.what}`);
}
