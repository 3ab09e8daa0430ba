// Running burrow (and other commands) the two ways integration tests need:
//
//   rootless: as the test user, through `setpriv --reuid --regid
//             --init-groups` (it execs, so the pid is the command's own and a
//             timeout kills the right process), with a clean environment:
//             HOME USER LOGNAME PATH XDG_RUNTIME_DIR TMPDIR LANG.
//   rootful:  as root inside a test netns (netns.ts), through
//             `nsenter --net=/run/netns/NAME --` (host mount namespace kept).
//
// Both add BURROW_RUNTIME_DIR / BURROW_STATE_DIR / BURROW_CNI_CONFIG_DIR when
// given `dirs` (see makeDirs), so a test gets its own daemon, state and
// networks. The test process itself runs as root.
import type { Subprocess } from "bun";
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { burrowBin, rootEnv, runPrefix, testUser, userEnv } from "./env.ts";
import type { TestNetns } from "./netns.ts";

export type Mode = "rootless" | "rootful";

export interface BurrowDirs {
  /** Parent of the three below; removed by remove(). */
  root: string;
  runtimeDir: string;
  stateDir: string;
  cniConfigDir: string;
  /** podman 4-6 network files (netavark) and netavark's --config. */
  networksDir: string;
  netavarkDir: string;
  /** The BURROW_* variables that point burrow at these dirs. */
  env: Record<string, string>;
  /** Unmounts what is still mounted below root (returns those paths), then deletes root. */
  remove(): Promise<string[]>;
}

export interface RunOptions {
  /** Default "rootless". */
  mode?: Mode;
  /** Required for rootful: the namespace the command runs in. */
  netns?: TestNetns;
  dirs?: BurrowDirs;
  /** Added to the clean environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  stdin?: string | Uint8Array;
  /** Default: the test user's home (rootless), / (rootful). */
  cwd?: string;
  /** Kill with SIGKILL after this long; default 30000. */
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The command was killed by the timeout. */
  timedOut: boolean;
}

export interface SpawnOptions extends Omit<RunOptions, "stdin" | "timeoutMs"> {
  stdin?: "pipe" | "ignore" | "inherit";
  stdout?: "pipe" | "ignore" | "inherit";
  stderr?: "pipe" | "ignore" | "inherit";
}

/** The argv, environment and cwd that run `cmd` as `opts` says (pure apart
 * from looking up the test user). */
export function commandFor(cmd: string[], opts: Omit<RunOptions, "stdin" | "timeoutMs"> = {}): { argv: string[]; env: Record<string, string>; cwd: string } {
  const extra = { ...opts.dirs?.env, ...opts.env };
  if ((opts.mode ?? "rootless") === "rootless") {
    const u = testUser();
    return {
      argv: ["setpriv", `--reuid=${u.uid}`, `--regid=${u.gid}`, "--init-groups", "--", ...cmd],
      env: userEnv(extra),
      cwd: opts.cwd ?? u.home,
    };
  }
  if (!opts.netns) throw new Error("rootful runs need a test netns (createNetns()): never the host's network");
  return { argv: ["nsenter", `--net=${opts.netns.path}`, "--", ...cmd], env: rootEnv(extra), cwd: opts.cwd ?? "/" };
}

/** Runs `cmd` to completion (rootless as the test user, or rootful in a netns). */
export async function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const c = commandFor(cmd, opts);
  const p = Bun.spawn(c.argv, {
    env: c.env,
    cwd: c.cwd,
    stdin: opts.stdin === undefined ? "ignore" : typeof opts.stdin === "string" ? Buffer.from(opts.stdin) : opts.stdin,
    stdout: "pipe",
    stderr: "pipe",
  });
  const limit = opts.timeoutMs ?? 30000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill("SIGKILL");
  }, limit);
  const out = collect(p.stdout);
  const err = collect(p.stderr);
  await p.exited;
  clearTimeout(timer);
  // A child that inherited stdout/stderr (a daemon that did not detach its
  // stdio) keeps the pipes open after the command exits: `x=$(burrow run -d
  // ...)` would hang in a shell. Say so instead of hanging here.
  const held = await Promise.race([Promise.all([out.done, err.done]).then(() => false), Bun.sleep(2000).then(() => true)]);
  let stderr = err.text();
  if (timedOut) stderr += `[killed after ${limit} ms]\n`;
  if (held) stderr += "[stdout/stderr still held open by a child process after the command exited]\n";
  const sig = p.signalCode;
  const code = p.exitCode ?? 128 + (typeof sig === "number" ? sig : sig ? (constants.signals[sig] ?? 0) : 0);
  return { code, stdout: out.text(), stderr, timedOut };
}

/** Reads a stream in the background; text() is what arrived so far. */
function collect(stream: ReadableStream<Uint8Array>): { done: Promise<void>; text(): string } {
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    for await (const c of stream) chunks.push(c);
  })().catch(() => {});
  return { done, text: () => Buffer.concat(chunks).toString("utf8") };
}

/** Starts `cmd` and returns the Subprocess (default: stdin ignored, stdout
 * and stderr piped). The caller kills it and awaits `.exited`. */
export function spawn(
  cmd: string[],
  opts: SpawnOptions = {},
): Subprocess<"pipe" | "ignore" | "inherit", "pipe" | "ignore" | "inherit", "pipe" | "ignore" | "inherit"> {
  const c = commandFor(cmd, opts);
  return Bun.spawn(c.argv, {
    env: c.env,
    cwd: c.cwd,
    stdin: opts.stdin ?? "ignore",
    stdout: opts.stdout ?? "pipe",
    stderr: opts.stderr ?? "pipe",
  });
}

/** `burrow ARGS` under test. */
export function burrow(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run([burrowBin(), ...args], opts);
}

/** `burrow ARGS` that must exit 0; returns stdout, throws with stderr otherwise. */
export async function burrowOk(args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await burrow(args, opts);
  if (r.code !== 0) throw new Error(`burrow ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A long-running `burrow ARGS` (e.g. a foreground `run`). */
export function spawnBurrow(args: string[], opts: SpawnOptions = {}) {
  return spawn([burrowBin(), ...args], opts);
}

/** Any command as the test user (rootless identity and environment). */
export function runAsUser(cmd: string[], opts: Omit<RunOptions, "mode" | "netns"> = {}): Promise<RunResult> {
  return run(cmd, { ...opts, mode: "rootless" });
}

export function spawnAsUser(cmd: string[], opts: Omit<SpawnOptions, "mode" | "netns"> = {}) {
  return spawn(cmd, { ...opts, mode: "rootless" });
}

/** Any command as root inside a test netns. */
export function runInNetns(netns: TestNetns, cmd: string[], opts: Omit<RunOptions, "mode" | "netns"> = {}): Promise<RunResult> {
  return run(cmd, { ...opts, mode: "rootful", netns });
}

/** Private runtime, state and CNI config dirs for one test. Rootless: under
 * /run/user/UID (tmpfs, short socket paths), owned by the test user, 0700.
 * Rootful: under /run, owned by root. */
export interface DirsOptions {
  networkBackend?: "cni" | "netavark" | "auto";
  /** A containers.conf of this test's own (TOML text), given to burrow as CONTAINERS_CONF. */
  containersConf?: string;
}

export function makeDirs(mode: Mode = "rootless", o: DirsOptions = {}): BurrowDirs {
  const name = runPrefix + crypto.randomUUID().slice(0, 6);
  const root = mode === "rootless" ? `${testUser().runtimeDir}/${name}` : `/run/${name}`;
  const dirs = {
    runtimeDir: `${root}/run`,
    stateDir: `${root}/state`,
    cniConfigDir: `${root}/cni`,
    networksDir: `${root}/networks`,
    netavarkDir: `${root}/netavark`,
  };
  for (const d of [root, ...Object.values(dirs)]) {
    mkdirSync(d, { mode: 0o700 });
    if (mode === "rootless") chownSync(d, testUser().uid, testUser().gid);
  }
  const conf = `${root}/containers.conf`;
  if (o.containersConf !== undefined) {
    writeFileSync(conf, o.containersConf, { mode: 0o644 });
    if (mode === "rootless") chownSync(conf, testUser().uid, testUser().gid);
  }
  return {
    root,
    ...dirs,
    env: {
      BURROW_RUNTIME_DIR: dirs.runtimeDir,
      BURROW_STATE_DIR: dirs.stateDir,
      BURROW_CNI_CONFIG_DIR: dirs.cniConfigDir,
      BURROW_NETWORKS_DIR: dirs.networksDir,
      BURROW_NETAVARK_DIR: dirs.netavarkDir,
      // Tests written for one backend say which; "auto" leaves the choice to burrow's rule (src/net/registry.ts).
      ...(o.networkBackend === "auto" ? {} : { BURROW_NETWORK_BACKEND: o.networkBackend ?? "cni" }),
      ...(o.containersConf !== undefined ? { CONTAINERS_CONF: conf } : {}),
    },
    remove: () => removeDirs(root),
  };
}

async function removeDirs(root: string): Promise<string[]> {
  // Rootful pins are bind mounts below root in the host mount namespace;
  // rm -r would stop at them with EBUSY. Deepest first.
  const mounted = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => !!m && (m === root || m.startsWith(`${root}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounted) Bun.spawnSync(["umount", "-l", m]);
  rmSync(root, { recursive: true, force: true });
  return mounted;
}
