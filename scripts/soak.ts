// Soak (issue 10): many cycles of what a user does all day, against one
// daemon, watching what must not grow: the daemon's RSS and open fds, and
// the state database (state.db + its WAL) on disk.
//
//   sudo node_modules/.bin/bun scripts/soak.ts [CYCLES] [--mode rootless|rootful] [--kind full|light|mixed|runrm] [--every N] [--keep-going]
//
// kinds (each cycle, one sandbox):
//   full   run -d --network bridge -p (busybox httpd), traffic through the
//          published port, network connect + disconnect of a second bridge
//          network, rm -f   (default)
//   light  run -d --network slirp4netns -p, traffic, rm -f
//   mixed  light, and every tenth cycle a full one (the CI soak's)
//   runrm  `run --rm -- true`: what the events table and the WAL grow by
//
// --keep-going: a failed cycle is reported (and counted in the summary)
// and the soak goes on, instead of ending at the first failure.
// --smaps DIR: at every sample, copy the daemon's /proc/PID/smaps, status
// thread names and open fds to DIR/CYCLE.{smaps,status,threads,fds} (what grew, by
// mapping: scripts/smaps-diff.ts DIR/A.smaps DIR/B.smaps).
//
// Prints one line every N cycles (default CYCLES/10) and a JSON summary at
// the end (also written to .bench/soak-TIME.json). Runs as root with the
// test helpers (test/helpers): private dirs, the test user (rootless) or a
// test netns (rootful), and everything removed afterwards. Not in CI; the
// bounded version is test/integration/soak.test.ts.
import { chownSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../test/helpers/context.ts";
import { testUser } from "../test/helpers/env.ts";
import { procEnv } from "../test/helpers/leaks.ts";
import { listPids } from "../test/helpers/netns.ts";

export type SoakKind = "full" | "light" | "mixed" | "runrm";

export interface SoakSample {
  cycle: number;
  daemonPid: number;
  rssKiB: number;
  fds: number;
  /** state.db + state.db-wal + state.db-shm, bytes. */
  dbBytes: number;
  elapsedMs: number;
}

export interface SoakResult {
  mode: "rootless" | "rootful";
  kind: SoakKind;
  cycles: number;
  samples: SoakSample[];
  /** Distinct daemon pids seen (more than one: the daemon restarted mid-soak). */
  daemons: number[];
  msPerCycle: number;
  /** Cycles that failed (only with keepGoing: otherwise the first failure ends the soak). */
  failures: { cycle: number; error: string }[];
}

function daemonPid(t: BurrowContext): number | null {
  for (const pid of listPids()) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1] !== "__daemon") continue;
    } catch {
      continue;
    }
    if (procEnv(pid).runtimeDir === t.dirs.runtimeDir) return pid;
  }
  return null;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export async function sample(t: BurrowContext, cycle: number, t0: number): Promise<SoakSample> {
  // The daemon answers `ps` once every background release is done.
  await t.burrowOk(["ps"]);
  const pid = daemonPid(t);
  if (!pid) throw new Error(`soak: no daemon running after cycle ${cycle}`);
  // At a quiet moment: the last rm's background release (and its
  // connections) takes a moment; the fewest fds of a few reads.
  let fds = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 4; i++) {
    await Bun.sleep(100);
    fds = Math.min(fds, readdirSync(`/proc/${pid}/fd`).length);
  }
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  const db = `${t.dirs.stateDir}/state.db`;
  return {
    cycle,
    daemonPid: pid,
    rssKiB: rss,
    fds,
    dbBytes: sizeOf(db) + sizeOf(`${db}-wal`) + sizeOf(`${db}-shm`),
    elapsedMs: Math.round(performance.now() - t0),
  };
}

async function until<T>(fn: () => Promise<T | null>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`soak: ${what} did not happen within ${ms} ms`);
    await Bun.sleep(20);
  }
}

/** GET through the published port, from the host (rootless) or the test netns (rootful). */
async function fetchPort(t: BurrowContext, port: number): Promise<string | null> {
  const r = await t.run(["curl", "-sS", "--max-time", "2", `http://127.0.0.1:${port}/index.html`], { timeoutMs: 5000 });
  return r.code === 0 ? r.stdout : null;
}

export async function soakCycles(
  t: BurrowContext,
  opts: { cycles: number; kind: SoakKind; every?: number; keepGoing?: boolean; onSample?: (s: SoakSample) => void },
): Promise<SoakResult> {
  const every = Math.max(1, opts.every ?? Math.floor(opts.cycles / 10));
  const www = `${t.dirs.root}/www`;
  mkdirSync(www, { recursive: true });
  writeFileSync(`${www}/index.html`, "soak\n");
  if (t.mode === "rootless") for (const p of [www, `${www}/index.html`]) chownSync(p, testUser().uid, testUser().gid);
  if (opts.kind === "full" || opts.kind === "mixed") await t.burrowOk(["network", "create", "soaknet"]);
  // The daemon up, then a first sample: cycle 0.
  await t.burrowOk(["ps"]);
  const t0 = performance.now();
  const samples: SoakSample[] = [await sample(t, 0, t0)];
  opts.onSample?.(samples[0]!);
  const failures: SoakResult["failures"] = [];
  for (let i = 1; i <= opts.cycles; i++) {
    try {
      await cycle(i);
    } catch (e) {
      if (!opts.keepGoing) throw e;
      const error = (e instanceof Error ? e.message : String(e)).trim().split("\n").join(" / ");
      failures.push({ cycle: i, error });
      console.error(`soak: cycle ${i} failed (going on): ${error}`);
      await t.burrow(["rm", "-f", `soak${i}`]);
    }
    if (i % every === 0 || i === opts.cycles) {
      const s = await sample(t, i, t0);
      samples.push(s);
      opts.onSample?.(s);
    }
  }
  async function cycle(i: number): Promise<void> {
    if (opts.kind === "runrm") {
      await t.burrowOk(["run", "--rm", "--network", "none", "--", "true"]);
    } else {
      const name = `soak${i}`;
      const full = opts.kind === "full" || (opts.kind === "mixed" && i % 10 === 0);
      // connect/disconnect need a bridge network (as in podman v3).
      const network = full ? "bridge" : "slirp4netns";
      await t.burrowOk(["run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::8080", "--", "busybox", "httpd", "-f", "-p", "8080", "-h", www]);
      const port = Number(/:(\d+)\s*$/m.exec(await t.burrowOk(["port", name]))?.[1]);
      const body = await until(() => fetchPort(t, port), 10_000, `a reply through port ${port}`);
      if (body !== "soak\n") throw new Error(`soak: cycle ${i}: unexpected reply ${JSON.stringify(body)}`);
      if (full) {
        await t.burrowOk(["network", "connect", "soaknet", name]);
        await t.burrowOk(["network", "disconnect", "soaknet", name]);
      }
      await t.burrowOk(["rm", "-f", name]);
    }
  }
  if (opts.kind === "full" || opts.kind === "mixed") await t.burrowOk(["network", "rm", "soaknet"]);
  const last = samples.at(-1)!;
  return {
    mode: t.mode,
    kind: opts.kind,
    cycles: opts.cycles,
    samples,
    daemons: [...new Set(samples.map((s) => s.daemonPid))],
    msPerCycle: Math.round(last.elapsedMs / opts.cycles),
    failures,
  };
}

function formatSample(s: SoakSample): string {
  return `cycle ${String(s.cycle).padStart(5)}  daemon ${s.daemonPid}  rss ${(s.rssKiB / 1024).toFixed(1)} MiB  fds ${s.fds}  db ${(s.dbBytes / 1024).toFixed(0)} KiB  ${(s.elapsedMs / 1000).toFixed(1)} s`;
}

/** The daemon's mappings, status and thread names at one sample (--smaps). */
function saveSmaps(s: SoakSample, dir: string): void {
  const proc = `/proc/${s.daemonPid}`;
  const base = `${dir}/${String(s.cycle).padStart(5, "0")}`;
  try {
    writeFileSync(`${base}.smaps`, readFileSync(`${proc}/smaps`));
    writeFileSync(`${base}.status`, readFileSync(`${proc}/status`));
    const threads = readdirSync(`${proc}/task`).map((tid) => {
      try {
        return `${tid} ${readFileSync(`${proc}/task/${tid}/comm`, "utf8").trim()}`;
      } catch {
        return `${tid} ?`;
      }
    });
    writeFileSync(`${base}.threads`, `${threads.join("\n")}\n`);
    const fds = readdirSync(`${proc}/fd`).map((fd) => {
      try {
        return `${fd} ${readlinkSync(`${proc}/fd/${fd}`)}`;
      } catch {
        return `${fd} ?`;
      }
    });
    writeFileSync(`${base}.fds`, `${fds.join("\n")}\n`);
  } catch (e) {
    console.error(`soak: --smaps: ${e instanceof Error ? e.message : e}`);
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : undefined;
  };
  const mode = (flag("--mode") ?? "rootless") as "rootless" | "rootful";
  const kind = (flag("--kind") ?? "full") as SoakKind;
  const every = flag("--every");
  const smapsDir = flag("--smaps");
  const keepGoing = args.includes("--keep-going");
  if (keepGoing) args.splice(args.indexOf("--keep-going"), 1);
  const cycles = Number(args[0] ?? "1000");
  if (!["rootless", "rootful"].includes(mode) || !["full", "light", "mixed", "runrm"].includes(kind) || !Number.isInteger(cycles) || cycles < 1) {
    console.error("usage: bun scripts/soak.ts [CYCLES] [--mode rootless|rootful] [--kind full|light|mixed|runrm] [--every N] [--keep-going] [--smaps DIR]");
    process.exit(2);
  }
  if (process.getuid?.() !== 0) {
    console.error("soak: run as root (it drives burrow as the test user, or rootful inside a test netns)");
    process.exit(2);
  }
  const t = await burrowContext(mode);
  let code = 0;
  try {
    if (smapsDir) mkdirSync(smapsDir, { recursive: true });
    const onSample = (s: SoakSample) => {
      console.log(formatSample(s));
      if (smapsDir) saveSmaps(s, smapsDir);
    };
    const r = await soakCycles(t, { cycles, kind, keepGoing, every: every ? Number(every) : undefined, onSample });
    const json = JSON.stringify(r, null, 2);
    mkdirSync(".bench", { recursive: true });
    const out = `.bench/soak-${mode}-${kind}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
    writeFileSync(out, `${json}\n`);
    console.log(
      `${cycles} ${kind} cycles (${mode}) in ${(r.samples.at(-1)!.elapsedMs / 1000).toFixed(1)} s, ${r.msPerCycle} ms each; daemons: ${r.daemons.join(", ")}; failed cycles: ${r.failures.length}; ${out}`,
    );
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    try {
      const daemonLog = readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8");
      mkdirSync(".bench", { recursive: true });
      const kept = `.bench/soak-daemon-${new Date().toISOString().replace(/[:.]/g, "-")}.log`;
      writeFileSync(kept, daemonLog);
      console.error(`daemon log (last lines; all of it in ${kept}):\n${daemonLog.trim().split("\n").slice(-15).join("\n")}`);
    } catch {}
    code = 1;
  } finally {
    await t.dispose().catch((e) => {
      console.error(`soak: left behind: ${e instanceof Error ? e.message : e}`);
      code = 1;
    });
  }
  process.exit(code);
}
