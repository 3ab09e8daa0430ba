// CLI side of the control protocol: HTTP over the control socket, starting
// the daemon (and, rootless, the holder) on demand under a lock so that ten
// concurrent CLIs start exactly one.
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { BurrowError } from "../errors.ts";
import { controlSocket, resolvePaths, type Paths } from "../paths.ts";
import * as v from "valibot";
import { ErrorReply, Replies, formatIssues, type Op, type OpArgs, type Reply } from "../protocol.ts";
import { roleEnv, selfCommand, SELF_ARGV0 } from "../sys/env.ts";
import { LOCK, flock } from "../sys/proc.ts";
import { ensureHolder, holderFile, readHolder } from "../userns/session.ts";
import { replaceOtherDaemon, writeRecord } from "./upgrade.ts";

let cachedPaths: Paths | null = null;
export function paths(): Paths {
  return (cachedPaths ??= resolvePaths());
}

class Unreachable extends Error {}

async function rawCall(op: string, args: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`http://burrow/${op}`, {
      unix: controlSocket(paths()),
      method: "POST",
      body: JSON.stringify(args ?? {}),
      headers: { "content-type": "application/json" },
      keepalive: true,
    } as RequestInit);
  } catch (e) {
    throw new Unreachable(String(e));
  }
  const body = await res.json().catch(() => undefined);
  if (!res.ok) {
    const err = v.safeParse(ErrorReply, body);
    if (!err.success) throw new BurrowError(`the daemon failed with status ${res.status} and no readable error`, { kind: "protocol" });
    throw new BurrowError(err.output.error, { kind: err.output.kind, exitCode: err.output.exitCode ?? 125 });
  }
  const reply = v.safeParse(Replies[op as Op], body);
  if (!reply.success) throw new BurrowError(`the daemon's reply to ${op} is not what this burrow expects (${formatIssues(reply.issues)}): is an older daemon still running?`, { kind: "protocol" });
  return reply.output;
}

let versionChecked = false;

export async function call<O extends Op>(op: O, args: OpArgs<O>): Promise<Reply<O>> {
  if (!versionChecked) {
    versionChecked = true;
    await replaceOtherDaemon(paths());
  }
  try {
    return (await rawCall(op, args)) as Reply<O>;
  } catch (e) {
    if (!(e instanceof Unreachable)) throw e;
  }
  await ensureDaemon();
  return rawCall(op, args) as Promise<Reply<O>>;
}

/**
 * The reply of a daemon that is already running, or null when none is: never
 * starts one (shell completion asks for names on every TAB).
 */
export async function callIfRunning<O extends Op>(op: O, args: OpArgs<O>): Promise<Reply<O> | null> {
  try {
    return (await rawCall(op, args)) as Reply<O>;
  } catch (e) {
    if (e instanceof Unreachable) return null;
    throw e;
  }
}

/** The daemon's pid, or null when none answers. */
async function ping(): Promise<number | null> {
  try {
    return ((await rawCall("ping", {})) as Reply<"ping">).pid;
  } catch {
    return null;
  }
}

/** Starts holder and daemon unless running; serialized by a lock file. */
export async function ensureDaemon(): Promise<void> {
  const p = paths();
  mkdirSync(p.runtimeDir, { recursive: true, mode: 0o700 });
  const lockFd = openSync(`${p.runtimeDir}/daemon.lock`, "a", 0o600);
  try {
    flock(lockFd, LOCK.EX);
    if ((await ping()) !== null) return;
    const hadHolder = p.rootless ? readHolder(p) : null;
    const holder = p.rootless ? await ensureHolder(p) : null;
    const logPath = `${p.runtimeDir}/daemon.log`;
    let logFd = openSync(logPath, "a", 0o600);
    if (fstatSync(logFd).size > 1 << 20) {
      // Keep the log from growing without bound across daemon restarts.
      closeSync(logFd);
      logFd = openSync(logPath, "w", 0o600);
    }
    const logStart = fstatSync(logFd).size;
    const launcher = Bun.spawn([...selfCommand(), "__launch", holder ? String(holder.pid) : "-"], {
      argv0: SELF_ARGV0,
      env: roleEnv({ BURROW_PATHS: JSON.stringify(p) }),
      stdin: "ignore",
      stdout: logFd,
      stderr: logFd,
      detached: true,
    });
    closeSync(logFd);
    launcher.unref();
    let exited = false;
    launcher.exited.then(() => (exited = true));
    const deadline = Date.now() + 10_000;
    for (let i = 0; Date.now() < deadline; i++) {
      const pid = await ping();
      if (pid !== null) {
        writeRecord(p, pid);
        return;
      }
      if (exited) break;
      await Bun.sleep(i < 20 ? 2 : 20);
    }
    // Leave nothing behind: a daemon that never answered, and a holder made
    // just for it (one that was there before may hold others' sandboxes).
    if (!exited) launcher.kill("SIGKILL");
    if (holder && !hadHolder) {
      try {
        process.kill(holder.pid, "SIGKILL");
      } catch {}
      rmSync(holderFile(p), { force: true });
    }
    let tail = "";
    try {
      // Only what this start wrote: the log keeps earlier daemons' lines.
      const lines = readFileSync(logPath).subarray(logStart).toString("utf8").trim().split("\n");
      tail = lines.findLast((l) => l.startsWith("burrow daemon:") || l.startsWith("burrow:"))?.replace(/^burrow( daemon)?: /, "") ?? lines.slice(-3).join(" | ");
    } catch {}
    throw new BurrowError(`the burrow daemon did not start${tail ? `: ${tail}` : ""} (log: ${logPath})`, { kind: "daemon" });
  } finally {
    flock(lockFd, LOCK.UN);
    closeSync(lockFd);
  }
}

