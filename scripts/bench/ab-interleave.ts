// Runs commands A and B alternately N times each (A, B, A, B, ...) and
// prints their medians and the median of the paired differences B - A.
// Interleaving matters: hyperfine runs each command's runs in one block, so
// a machine that gets busier or quieter between the blocks (other people's
// work on 2 cores) shows up as a difference between the commands.
//
//   bun scripts/bench/ab-interleave.ts RUNS WARMUP LABEL @@ A... @@ B...  (@@: the commands may hold --)
const args = process.argv.slice(2);
const [runsArg, warmArg, labelArg] = args;
const label = labelArg ?? "";
const sep1 = args.indexOf("@@");
const sep2 = args.indexOf("@@", sep1 + 1);
if (sep1 < 0 || sep2 < 0) throw new Error("usage: ab-interleave.ts RUNS WARMUP LABEL @@ A... @@ B...");
const a = args.slice(sep1 + 1, sep2);
const b = args.slice(sep2 + 1);
const runs = Number(runsArg);
const warmup = Number(warmArg);

function once(cmd: string[]): number {
  const t0 = performance.now();
  const p = Bun.spawnSync(cmd, { stdout: "ignore", stderr: "pipe" });
  const ms = performance.now() - t0;
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${p.exitCode}: ${p.stderr.toString()}`);
  return ms;
}
const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
for (let i = 0; i < warmup; i++) {
  once(a);
  once(b);
}
const ta: number[] = [];
const tb: number[] = [];
for (let i = 0; i < runs; i++) {
  // Alternate which goes first, so neither always follows the other.
  if (i % 2) {
    tb.push(once(b));
    ta.push(once(a));
  } else {
    ta.push(once(a));
    tb.push(once(b));
  }
}
const diff = median(ta.map((x, i) => tb[i]! - x));
console.log(
  `  ${label.padEnd(28)} A ${median(ta).toFixed(2)} ms   B ${median(tb).toFixed(2)} ms   median of paired B - A ${diff >= 0 ? "+" : ""}${diff.toFixed(2)} ms (${runs} pairs)`,
);
