// Runs commands A and B alternately N times each (A, B, A, B, ...) and
// prints their medians and the median of the paired differences B - A, of
// the wall time and of the CPU time (user + system of the command and the
// children it waited for: on a shared machine, the steadier figure).
// Interleaving matters: hyperfine runs each command's runs in one block, so
// a machine that gets busier or quieter between the blocks (other people's
// work on 2 cores) shows up as a difference between the commands.
//
//   bun scripts/bench/ab-interleave.ts RUNS WARMUP LABEL @@ A... @@ B...  (@@: the commands may hold --)
//
// AB_GAP_MS (default 0): a pause before each command. Work a daemon does
// after its reply (a release, the next spare Worker) otherwise overlaps the
// other side's next run, which favours the build that defers more.
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

const gapMs = Number(process.env.AB_GAP_MS ?? "0");

/** Wall time, and CPU time (user + system, ms) from the command's rusage. */
function once(cmd: string[]): number {
  if (gapMs > 0) Bun.sleepSync(gapMs);
  const t0 = performance.now();
  const p = Bun.spawnSync(cmd, { stdout: "ignore", stderr: "pipe" });
  const ms = performance.now() - t0;
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${p.exitCode}: ${p.stderr.toString()}`);
  lastCpu = Number(p.resourceUsage.cpuTime.user + p.resourceUsage.cpuTime.system) / 1000;
  return ms;
}
let lastCpu = 0;
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
const ca: number[] = [];
const cb: number[] = [];
const runA = () => {
  ta.push(once(a));
  ca.push(lastCpu);
};
const runB = () => {
  tb.push(once(b));
  cb.push(lastCpu);
};
for (let i = 0; i < runs; i++) {
  // Alternate which goes first, so neither always follows the other.
  if (i % 2) {
    runB();
    runA();
  } else {
    runA();
    runB();
  }
}
const diff = median(ta.map((x, i) => tb[i]! - x));
const cdiff = median(ca.map((x, i) => cb[i]! - x));
console.log(
  `  ${label.padEnd(28)} A ${median(ta).toFixed(2)} ms   B ${median(tb).toFixed(2)} ms   median of paired B - A ${diff >= 0 ? "+" : ""}${diff.toFixed(2)} ms (${runs} pairs)`,
);
console.log(
  `  ${"  CPU (user + sys)".padEnd(28)} A ${median(ca).toFixed(2)} ms   B ${median(cb).toFixed(2)} ms   median of paired B - A ${cdiff >= 0 ? "+" : ""}${cdiff.toFixed(2)} ms`,
);
