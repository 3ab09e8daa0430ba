// One integration test's world: private burrow dirs, a test netns when
// rootful, a leak snapshot, and a dispose() that checks for leaks and then
// removes whatever is left so the next test starts clean.
//
//   let t: BurrowContext;
//   beforeEach(async () => { t = await burrowContext("rootless"); });
//   afterEach(() => t.dispose());          // throws listing any leak
//   test("...", async () => {
//     const r = await t.burrow(["run", "--rm", "--", "true"]);
//     expect(r.code).toBe(0);
//   });
import { readFileSync, readlinkSync } from "node:fs";
import { findLeaks, formatItems, runtimeDirOf, snapshot, type Item, type Snapshot } from "./leaks.ts";
import { createNetns, killPids, listPids, type TestNetns } from "./netns.ts";
import { burrow, burrowOk, makeDirs, run, spawn, spawnBurrow, type BurrowDirs, type Mode, type RunOptions, type RunResult, type SpawnOptions } from "./run.ts";

export interface BurrowContext {
  mode: Mode;
  dirs: BurrowDirs;
  /** Rootful only. */
  netns?: TestNetns;
  before: Snapshot;
  /** burrow under test, as this context's identity, dirs and netns. */
  burrow(args: string[], opts?: RunOptions): Promise<RunResult>;
  burrowOk(args: string[], opts?: RunOptions): Promise<string>;
  /** Long-running burrow; dispose() SIGTERMs it if still running. */
  spawnBurrow(args: string[], opts?: SpawnOptions): ReturnType<typeof spawnBurrow>;
  /** Any command with the same identity and netns (the test user, or root in the netns). */
  run(cmd: string[], opts?: RunOptions): Promise<RunResult>;
  spawn(cmd: string[], opts?: SpawnOptions): ReturnType<typeof spawn>;
  /** Leak check, then forced cleanup (processes, mounts, netns, dirs). Throws listing leaks. */
  dispose(opts?: { includeServices?: boolean; settleMs?: number }): Promise<void>;
}

export async function burrowContext(mode: Mode = "rootless"): Promise<BurrowContext> {
  const netns = mode === "rootful" ? await createNetns() : undefined;
  const dirs = makeDirs(mode);
  const before = await snapshot({ runtimeDirs: [dirs.runtimeDir], netns: netns ? [netns.name] : [] });
  const base: RunOptions = { mode, netns, dirs };
  const spawned: ReturnType<typeof spawn>[] = [];
  const merge = <T extends RunOptions | SpawnOptions>(o?: T): T => ({ ...base, ...o, env: { ...o?.env } }) as T;
  const track = <P extends ReturnType<typeof spawn>>(p: P) => (spawned.push(p), p);

  return {
    mode,
    dirs,
    netns,
    before,
    burrow: (args, o) => burrow(args, merge(o)),
    burrowOk: (args, o) => burrowOk(args, merge(o)),
    spawnBurrow: (args, o) => track(spawnBurrow(args, merge(o))),
    run: (cmd, o) => run(cmd, merge(o)),
    spawn: (cmd, o) => track(spawn(cmd, merge(o))),
    async dispose(opts = {}) {
      const problems: string[] = [];
      // Foreground runs the test left running: stop them like a user would.
      const running = spawned.filter((p) => p.exitCode === null && p.signalCode === null);
      if (running.length) await killPids(running.map((p) => p.pid), 5000);

      const leaks: Item[] = await findLeaks(before, {
        runtimeDir: dirs.runtimeDir,
        netns: netns ? [netns.name] : [],
        includeServices: opts.includeServices,
        settleMs: opts.settleMs,
      });
      if (leaks.length) problems.push(`left behind after the test:\n${formatItems(leaks)}`);

      // Forced cleanup, leak or not: this context's daemon and holder (they
      // would otherwise wait for their idle timeout) and anything leaked.
      const mine = contextPids(dirs.runtimeDir);
      if (mine.length) await killPids(mine);
      if (netns) {
        const killed = await netns.remove();
        if (killed.length) problems.push(`still running in netns ${netns.name} (killed):\n  ${killed.join("\n  ")}`);
      }
      await dirs.remove();
      if (problems.length) throw new Error(problems.join("\n"));
    },
  };
}

/** Processes that belong to the burrow using `runtimeDir`: started with it
 * in their environment, or inside its holder's user namespace (the holder
 * execs `sleep` with a bare environment). */
function contextPids(runtimeDir: string): number[] {
  let holder: { pid: number; userns: string } | undefined;
  try {
    holder = JSON.parse(readFileSync(`${runtimeDir}/holder.json`, "utf8"));
  } catch {}
  const userns = holder?.userns ? normalizeNs("user", holder.userns) : undefined;
  return listPids().filter((pid) => {
    if (pid === process.pid) return false;
    if (runtimeDirOf(pid) === runtimeDir) return true;
    if (!userns) return false;
    try {
      return readlinkSync(`/proc/${pid}/ns/user`) === userns;
    } catch {
      return false;
    }
  });
}

/** holder.json may store "user:[N]" or just N. */
function normalizeNs(kind: string, id: string | number): string {
  return /^\d+$/.test(String(id)) ? `${kind}:[${id}]` : String(id);
}
