// The bounded soak (issue 10): scripts/soak.ts's cycles against one daemon,
// as the test user and rootful in a test netns, asserting that the daemon's
// open fds stay flat and its RSS does not keep growing. The long run (1,000
// cycles, the numbers in docs/benchmarks.md) is `sudo scripts/soak`.
//
// Cycle: run -d on slirp4netns with a published port (busybox httpd),
// traffic through it, rm -f; every tenth cycle a bridge sandbox that is
// connected to and disconnected from a second network (the "light" kind,
// plus connect/disconnect at a tenth of the cost: a full cycle takes 670 ms
// here, 350 of them ~50 s per mode). BURROW_SOAK_CYCLES (350),
// BURROW_SOAK_RSS_MB (5): the bound on growth after the warm-up (issue 10:
// "RSS grows less than 5 MB").
//
// The growth is the median of the samples in the last 50 cycles less the
// median of the 50 after the warm-up (a sample every 10 cycles), not one
// sample less another: a single sample swings by 1-1.5 MB (the JIT's code,
// the heap between collections), which put one-sample growths of main's
// code anywhere from +1.0 to +4.6 MB against the 5 MB bound (2026-12-05,
// docs/benchmarks.md "Soak"). The windows' middles are 200 cycles apart,
// as the two samples were: a leak of 25 KB a sandbox (what issue 10 found)
// still shows as 5 MB.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { soakCycles, type SoakSample } from "../../scripts/soak.ts";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping soak integration tests: ${why}`);

const CYCLES = Number(process.env.BURROW_SOAK_CYCLES ?? "350");
const RSS_MB = Number(process.env.BURROW_SOAK_RSS_MB ?? "5");
/** Cycles before the baseline: the forwarder's threads, JIT and caches settle. */
const WARMUP = Math.min(100, Math.floor(CYCLES / 3));
/** Cycles in each window whose samples' median is taken. */
const WINDOW = Math.min(50, Math.floor(CYCLES / 7));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

for (const mode of ["rootless", "rootful"] as const) {
  describe.skipIf(!!why)(`soak (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test(`${CYCLES} cycles: the daemon's fds stay flat; its RSS growth after the warm-up is measured against ${RSS_MB} MB`, async () => {
      const r = await soakCycles(t, { cycles: CYCLES, kind: "mixed", every: Math.max(1, Math.floor(WINDOW / 5)) });
      const line = (s: SoakSample) => `${s.cycle}: ${(s.rssKiB / 1024).toFixed(1)} MiB, ${s.fds} fds, db ${(s.dbBytes / 1024).toFixed(0)} KiB`;
      console.log(`soak (${mode}): ${r.msPerCycle} ms/cycle; ${r.samples.map(line).join(" | ")}`);
      expect(r.daemons).toHaveLength(1);
      const base = r.samples.find((s) => s.cycle >= WARMUP)!;
      const after = r.samples.filter((s) => s.cycle >= WARMUP);
      // Flat: a leaked fd per cycle would add hundreds; a few come and go with connections in flight.
      expect(Math.max(...after.map((s) => s.fds)) - base.fds).toBeLessThanOrEqual(4);
      expect(after.at(-1)!.fds - base.fds).toBeLessThanOrEqual(2);
      const first = after.filter((s) => s.cycle <= WARMUP + WINDOW);
      const last = after.filter((s) => s.cycle >= CYCLES - WINDOW);
      expect(first.length).toBeGreaterThanOrEqual(5);
      expect(last.length).toBeGreaterThanOrEqual(5);
      const growthMb = (median(last.map((s) => s.rssKiB)) - median(first.map((s) => s.rssKiB))) / 1024;
      console.log(`soak (${mode}): RSS growth ${growthMb.toFixed(2)} MB (medians of cycles ${WARMUP}-${WARMUP + WINDOW} and ${CYCLES - WINDOW}-${CYCLES})`);
      // Since the connector Worker collects its own garbage (docs/benchmarks.md
      // "Soak") the daemon grows ~1.5-3 MB between these windows, slowing
      // down (+8 MB from cycle 100 to 1,000); before, 25-60 KB per sandbox
      // made (5-12 MB here).
      expect(growthMb).toBeLessThan(RSS_MB);
    }, 600_000);
  });
}
