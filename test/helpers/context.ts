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
import { TAG_VAR, testRunId } from "./env.ts";
import { findLeaks, formatItems, procEnv, snapshot, type Item, type Scope, type Snapshot } from "./leaks.ts";
import { createNetns, killPids, listPids, type TestNetns } from "./netns.ts";
import {
  burrow,
  burrowOk,
  makeDirs,
  run,
  spawn,
  spawnBurrow,
  type BurrowDirs,
  type DirsOptions,
  type Mode,
  type RunOptions,
  type RunResult,
  type SpawnOptions,
} from "./run.ts";

export interface BurrowContext {
  mode: Mode;
  dirs: BurrowDirs;
  /** Rootful only. */
  netns?: TestNetns;
  before: Snapshot;
  /** BURROW_TEST_TAG of every command this context starts. */
  tag: string;
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

export async function burrowContext(mode: Mode = "rootless", o: DirsOptions = {}): Promise<BurrowContext> {
  const netns = mode === "rootful" ? await createNetns() : undefined;
  const dirs = makeDirs(mode, o);
  const before = await snapshot({ runtimeDirs: [dirs.runtimeDir], netns: netns ? [netns.name] : [] });
  const tag = `${testRunId}/${crypto.randomUUID().slice(0, 8)}`;
  const base: RunOptions = { mode, netns, dirs, env: { [TAG_VAR]: tag } };
  const spawned: ReturnType<typeof spawn>[] = [];
  const merge = <T extends RunOptions | SpawnOptions>(o?: T): T => ({ ...base, ...o, env: { ...base.env, ...o?.env } }) as T;
  const track = <P extends ReturnType<typeof spawn>>(p: P) => {
    spawned.push(p);
    return p;
  };

  return {
    mode,
    dirs,
    netns,
    before,
    tag,
    burrow: (args, o) => burrow(args, merge(o)),
    burrowOk: (args, o) => burrowOk(args, merge(o)),
    spawnBurrow: (args, o) => track(spawnBurrow(args, merge(o))),
    run: (cmd, o) => run(cmd, merge(o)),
    spawn: (cmd, o) => track(spawn(cmd, merge(o))),
    async dispose(opts = {}) {
      const problems: string[] = [];
      // Foreground runs the test left running: stop them like a user would.
      const running = spawned.filter((p) => p.exitCode === null && p.signalCode === null);
      if (running.length)
        await killPids(
          running.map((p) => p.pid),
          5000,
        );

      const scope: Scope = {
        tag,
        ownsPath: (p) => p === dirs.root || p.startsWith(`${dirs.root}/`),
        userns: holderUserns(dirs.runtimeDir),
      };
      const leaks: Item[] = await findLeaks(before, {
        runtimeDirs: [dirs.runtimeDir],
        netns: netns ? [netns.name] : [],
        includeServices: opts.includeServices,
        settleMs: opts.settleMs,
        scope,
      });
      if (leaks.length) problems.push(`left behind after the test:\n${formatItems(leaks)}`);

      // Forced cleanup, leak or not: this context's daemon and holder (they
      // would otherwise wait for their idle timeout) and anything leaked.
      const mine = contextPids(scope);
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

/** The user namespace of the holder of `runtimeDir` (see src/userns/session.ts). */
function holderUserns(runtimeDir: string): string[] {
  try {
    const h = JSON.parse(readFileSync(`${runtimeDir}/holder.json`, "utf8"));
    // Never the host's own user namespace (a planted or corrupt file): that
    // would make every process on the machine this context's to kill.
    if (typeof h.userns !== "string" || h.userns === readlinkSync("/proc/1/ns/user") || h.userns === readlinkSync("/proc/self/ns/user")) return [];
    // Only while the holder lives in it: a namespace's inode names it only
    // while it lives, and the number of a freed one goes to the next one made
    // (another test's or a soak's session, whose processes were then killed).
    return typeof h.pid === "number" && readlinkSync(`/proc/${h.pid}/ns/user`) === h.userns ? [h.userns] : [];
  } catch {
    return [];
  }
}

/** Every process tied to the scope by tag, runtime dir or holder user
 * namespace, whatever its kind (processes in the test netns die with it). */
function contextPids(scope: Scope): number[] {
  return listPids().filter((pid) => {
    if (pid === process.pid) return false;
    const env = procEnv(pid);
    if (env.tag && scope.tag && env.tag.startsWith(scope.tag)) return true;
    if (env.runtimeDir && scope.ownsPath?.(env.runtimeDir)) return true;
    try {
      // A daemon a helper started with a clean environment (aardvark-dns from
      // netavark) names this context's dirs on its command line.
      if (
        readFileSync(`/proc/${pid}/cmdline`, "utf8")
          .split("\0")
          .some((a) => scope.ownsPath?.(a))
      )
        return true;
      return !!scope.userns?.includes(readlinkSync(`/proc/${pid}/ns/user`));
    } catch {
      return false;
    }
  });
}

/**
 * The daemons serving this context: argv[1] "__daemon" and this context's
 * BURROW_RUNTIME_DIR. A child the daemon is spawning shows the daemon's
 * argv and environment until its execve (seen: the slirp4netns the daemon
 * starts ahead 2 ms after a setup, counted as a second daemon): one whose
 * parent is one of them is not a daemon.
 */
export function daemonPids(t: Pick<BurrowContext, "dirs">): number[] {
  return daemonPidsOf(t.dirs.runtimeDir);
}

/** daemonPids, by the runtime dir. */
export function daemonPidsOf(runtimeDir: string): number[] {
  const found = listPids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1] === "__daemon" && procEnv(pid).runtimeDir === runtimeDir;
    } catch {
      return false; // gone
    }
  });
  return found.filter((pid) => !found.includes(parentPid(pid) ?? 0));
}

/** The parent of `pid` (/proc/PID/stat's fourth field); null when it is gone. */
function parentPid(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}
