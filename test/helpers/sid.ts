// The sid tier: commands run in the Debian sid root of scripts/sid-root.sh
// (today's podman, netavark, aardvark-dns, pasta) on this machine's kernel,
// as root or as the test user there. docs/testing.md "The sid tier".
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, expect } from "bun:test";
import { burrowBin, repoRoot, ROOT_PATH, TAG_VAR, testRunId } from "./env.ts";
import { assertNoLeaks, type Snapshot, snapshot } from "./leaks.ts";

/**
 * The start of a sid entry's script: a home of its own in the entry's /tmp
 * (a tmpfs that goes with the entry), so burrow's and podman's state start
 * empty and nothing stays in the root.
 */
export const SID_FRESH_HOME = 'export HOME="$(mktemp -d)" && cd "$HOME"';

export const sidScript = join(repoRoot, "scripts/sid-root.sh");
/** The script's exit status when the Debian archive cannot be reached. */
const ARCHIVE_UNREACHABLE = 3;

export interface SidResult {
  code: number;
  stdout: string;
  stderr: string;
}

function scriptEnv(extra: Record<string, string> = {}): Record<string, string> {
  const keep = ["BURROW_SID_DIR", "BURROW_SID_MIRROR", "BURROW_TEST_USER"];
  const env: Record<string, string> = { HOME: "/root", PATH: ROOT_PATH, LANG: "C.UTF-8", BURROW_BIN: burrowBin(), [TAG_VAR]: `${testRunId}/sid` };
  for (const k of keep) if (process.env[k]) env[k] = process.env[k];
  return { ...env, ...extra };
}

async function finish(p: Bun.Subprocess<"ignore", "pipe", "pipe">, timeoutMs: number): Promise<SidResult> {
  // SIGTERM first: the script ends what runs in the root on it; SIGKILL
  // would leave that to `sid-root.sh sweep`.
  let timedOut = false;
  const term = setTimeout(() => {
    timedOut = true;
    p.kill("SIGTERM");
  }, timeoutMs);
  const kill = setTimeout(() => p.kill("SIGKILL"), timeoutMs + 15_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearTimeout(term);
  clearTimeout(kill);
  return { code, stdout, stderr: timedOut ? `${stderr}[sid-root.sh run: terminated after ${timeoutMs} ms]\n` : stderr };
}

/**
 * Builds the root when it is missing or stale (about a minute; cached), then
 * null when it is ready, or the reason to skip: the archive is unreachable.
 * Any other failure throws: a broken tier must not pass as skipped.
 */
export async function prepareSidRoot(): Promise<string | null> {
  const p = Bun.spawn(["bash", sidScript, "build"], { env: scriptEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const r = await finish(p, 15 * 60_000);
  // Quiet when the root is ready; a build says what it did and how long it took.
  if (r.stderr.trim()) console.warn(r.stderr.trim());
  if (r.code === 0) return null;
  if (r.code === ARCHIVE_UNREACHABLE)
    return r.stderr
      .trim()
      .split("\n")
      .at(-1)!
      .replace(/^sid-root: error: /, "");
  throw new Error(`scripts/sid-root.sh build failed (exit ${r.code}): see above`);
}

export interface SidRunOptions {
  /** As the test user (default) or as root in the sid root. */
  user?: boolean;
  timeoutMs?: number;
}

/** Starts `scripts/sid-root.sh run [--user] -- CMD...`; the caller awaits it with {@link sidWait}. */
export function sidSpawn(cmd: string[], opts: SidRunOptions = {}): Bun.Subprocess<"ignore", "pipe", "pipe"> {
  const argv = ["bash", sidScript, "run", ...(opts.user === false ? [] : ["--user"]), "--", ...cmd];
  return Bun.spawn(argv, { env: scriptEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

export function sidWait(p: Bun.Subprocess<"ignore", "pipe", "pipe">, timeoutMs = 60_000): Promise<SidResult> {
  return finish(p, timeoutMs);
}

/** Runs CMD in the sid root and waits for it (and the entry's cleanup). */
export function sidRun(cmd: string[], opts: SidRunOptions = {}): Promise<SidResult> {
  return sidWait(sidSpawn(cmd, opts), opts.timeoutMs);
}

/** Ends what a killed or broken entry left (`sid-root.sh sweep`). */
export async function sidSweep(): Promise<void> {
  await finish(Bun.spawn(["bash", sidScript, "sweep"], { env: scriptEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" }), 30_000);
}

/** The root's directory, as the script names it. */
export function sidRootDir(): string {
  return Bun.spawnSync(["bash", sidScript, "path"], { env: scriptEnv() }).stdout.toString().trim();
}

/** Pids whose root directory is the sid root (same device and inode). */
export function pidsInSidRoot(root = sidRootDir()): number[] {
  const want = statSync(root);
  const pids: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = statSync(`/proc/${e}/root`);
      if (s.dev === want.dev && s.ino === want.ino) pids.push(Number(e));
    } catch {} // gone, or a kernel thread
  }
  return pids;
}

/** The per-entry cgroups `run` made and has not removed yet. */
export function sidCgroups(): string[] {
  const mount = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .find((f) => f[2] === "cgroup2")?.[1];
  if (!mount) return [];
  try {
    return readdirSync(join(mount, "burrow-sid")).filter((e) => e.startsWith("run-"));
  } catch {
    return [];
  }
}

/**
 * The sid tier's per-test check, for a describe block of sid tests:
 * nothing of any entry may outlive it (no process rooted in the sid root,
 * no cgroup of an entry, nothing new on the host of the tier's tag). What
 * is found is ended (sweep) before the test fails with its list.
 */
export function sidTierChecks(): void {
  let before: Snapshot;
  beforeEach(async () => {
    before = await snapshot();
  });
  afterEach(async () => {
    const left = { pids: pidsInSidRoot(), cgroups: sidCgroups() };
    if (left.pids.length || left.cgroups.length) await sidSweep();
    expect(left).toEqual({ pids: [], cgroups: [] });
    await assertNoLeaks(before, { includeServices: true, scope: { tag: `${testRunId}/sid` } });
  });
}
