// CLI side of the control protocol: HTTP over the control socket, starting
// the daemon (and, rootless, the holder) on demand under a lock so that ten
// concurrent CLIs start exactly one.
import { BurrowError, EXIT, isErrorKind } from "../errors.ts";
import { controlSocket, resolvePaths, type Paths } from "../paths.ts";
import * as v from "valibot";
import type { Op, OpArgs } from "../protocol.ts";
import type { Reply } from "../replies.ts";
import { formatIssues } from "../messages.ts";
import { nodeFs } from "../lazy-node.ts";
import { ROLES, spawnRole } from "../roles.ts";
import { LOCK, flock } from "../sys/proc.ts";
import { ensureHolder, holderAlive, readHolder, removeHolderFiles, type HolderInfo } from "../userns/session.ts";
import { SUPERVISOR_IDLE_LINE, isSupervisor } from "../userns/supervisor.ts";
import { stateLockOwner } from "../state/lock.ts";
import { parentOf } from "../sys/processes.ts";
import { UntrustedPath, checkPrivateFile, connectControlSocket, ensurePrivateDir, openPrivateAppend } from "./trust.ts";
import { replaceOtherDaemon, writeRecord } from "./upgrade.ts";
import { DaemonSilent, daemonTimeoutMs, refuseIfDaemonStopped, takeDaemonLock, withDaemonDeadline } from "./deadline.ts";
import { postUnix, type UnixReply } from "./unix-http.ts";
import { readSupervisor, removeSupervisorFile, startSupervisorReady, supervisorAlive, supervisorChildren } from "./root-supervisor.ts";

let cachedPaths: Paths | null = null;
export function paths(): Paths {
  return (cachedPaths ??= resolvePaths());
}

class Unreachable extends Error {}

/** Set once the runtime dir and the socket file passed trust.ts (each request's connection checks the listener: connectDaemon). */
let verified = false;

/**
 * Checks the path to the daemon before anything is sent over it: nothing,
 * not even a ping, goes to a socket in a directory others control or to a
 * listener that is not the user's own (issue 10 item 3).
 */
function verifyDaemon(): void {
  if (verified) return;
  const p = paths();
  ensurePrivateDir(p.runtimeDir);
  if (!checkPrivateFile(controlSocket(p), "socket")) throw new Unreachable("no daemon listening");
  verified = true;
}

/** The connection a request goes over: its listener checked on it (trust.ts); none there is Unreachable. */
function connectDaemon(sock: string): number {
  const fd = connectControlSocket(sock);
  if (fd === null) throw new Unreachable("no daemon listening");
  return fd;
}

/** True when a daemon socket exists on a path that passed trust.ts; throws UntrustedPath otherwise. */
function daemonPathTrusted(): boolean {
  try {
    verifyDaemon();
    return true;
  } catch (e) {
    if (e instanceof Unreachable) return false;
    throw e;
  }
}

/**
 * The reply schemas (src/replies.ts, and through it the enter target's):
 * loaded while the first request is answered, once it is in the socket
 * (loaded as it went out, they held it back ~0.5 ms).
 */
let replies: Promise<typeof import("../replies.ts")> | null = null;
const loadReplies = () => (replies ??= import("../replies.ts"));

/** What a caller may ask of call() besides the request. */
export interface CallOptions {
  /**
   * Runs once the request is in the control socket: work the caller needs
   * only after the reply (run's foreground module) starts there, not ahead
   * of the request's bytes (it held a create back ~0.7 ms).
   */
  onSent?: () => void;
}

async function rawCall(op: string, args: unknown, opts: CallOptions = {}): Promise<unknown> {
  verifyDaemon();
  // Bounded by the daemon answering at all, not by how long the request
  // takes (src/client/deadline.ts).
  const { res, body } = await withDaemonDeadline(paths(), async (signal) => {
    let res: UnixReply;
    try {
      res = await postUnix(controlSocket(paths()), `/${op}`, JSON.stringify(args ?? {}), {
        signal,
        connect: connectDaemon,
        onSent: () => {
          // The op's reply schema is built while the daemon works, not after its answer.
          loadReplies().then(
            (m) => m.replyOf(op as Op),
            () => {},
          );
          opts.onSent?.();
        },
      });
    } catch (e) {
      if (signal.aborted || e instanceof UntrustedPath) throw e;
      verified = false;
      throw new Unreachable(String(e));
    }
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {}
    return { res, body };
  });
  const { ErrorReply, replyOf } = await loadReplies();
  if (res.status < 200 || res.status > 299) {
    const err = v.safeParse(ErrorReply, body);
    if (!err.success) throw new BurrowError(`the daemon failed with status ${res.status} and no readable error`, { kind: "protocol" });
    // A kind this CLI does not know (another version's daemon) is kept generic.
    throw new BurrowError(err.output.error, { kind: isErrorKind(err.output.kind) ? err.output.kind : "error", exitCode: err.output.exitCode ?? EXIT.burrow });
  }
  const reply = v.safeParse(replyOf(op as Op), body);
  if (!reply.success)
    throw new BurrowError(`the daemon's reply to ${op} is not what this burrow expects (${formatIssues(reply.issues)}): is an older daemon still running?`, {
      kind: "protocol",
    });
  return reply.output;
}

let versionChecked = false;

export async function call<O extends Op>(op: O, args: OpArgs<O>, opts: CallOptions = {}): Promise<Reply<O>> {
  // A bad BURROW_DAEMON_TIMEOUT is refused before any daemon is started or waited for.
  daemonTimeoutMs();
  if (!versionChecked) {
    versionChecked = true;
    // The version check talks to the daemon too: only over a trusted path.
    if (daemonPathTrusted()) await replaceOtherDaemon(paths());
  }
  try {
    return (await rawCall(op, args, opts)) as Reply<O>;
  } catch (e) {
    if (!(e instanceof Unreachable)) throw e;
  }
  await ensureDaemon();
  return rawCall(op, args, opts) as Promise<Reply<O>>;
}

/**
 * The reply of a daemon that is already running, or null when none is: never
 * starts one (shell completion asks for names on every TAB).
 */
export async function callIfRunning<O extends Op>(op: O, args: OpArgs<O>): Promise<Reply<O> | null> {
  daemonTimeoutMs();
  try {
    return (await rawCall(op, args)) as Reply<O>;
  } catch (e) {
    if (e instanceof Unreachable) return null;
    throw e;
  }
}

/**
 * The daemon's pid, or null when none answers. `checkStopped` (the default)
 * first refuses a daemon that is stopped; a caller polling every 2 ms asks
 * for that check on every tenth call only (it reads the state lock and
 * /proc/PID/stat: the wait for a starting daemon paid it ~500 times a second).
 */
async function ping(checkStopped = true): Promise<number | null> {
  // A daemon that holds the state's lock but is stopped would neither
  // answer nor let go: said at once, wherever the CLI waits for one.
  if (checkStopped) refuseIfDaemonStopped(paths());
  try {
    return ((await rawCall("ping", {})) as Reply<"ping">).pid;
  } catch (e) {
    // A trust refusal is the answer, not a daemon still starting; nor is
    // a daemon that is there but does not answer (stopped, hung).
    if (e instanceof UntrustedPath || e instanceof DaemonSilent) throw e;
    return null;
  }
}

/**
 * A daemon that holds the state database's lock is alive: its runtime
 * directory or socket was removed (a logout) and it makes them again within
 * a second (src/daemon/ownership.ts), or it is on its way out (its holder
 * died, SIGTERM) and lets go of the lock when done. Starting a second holder
 * and daemon beside it is what split burrow in two (issue 10 finding 1).
 * Waits up to 5 s for it to answer (true) or to let go of the lock (false).
 */
async function answeredByLockOwner(p: Paths): Promise<boolean> {
  let owner = stateLockOwner(p.stateDir);
  const until = Date.now() + 5_000;
  while (owner !== null && Date.now() < until) {
    if ((await ping()) !== null) return true;
    await Bun.sleep(20);
    owner = stateLockOwner(p.stateDir);
  }
  if (owner !== null)
    throw new BurrowError(
      `a burrow daemon${owner ? ` (pid ${owner})` : ""} holds the state in ${p.stateDir} but does not answer on ${controlSocket(p)}; see ${p.runtimeDir}/daemon.log, or stop it (kill ${owner || "PID"}) and run burrow again`,
      { kind: "daemon" },
    );
  return false;
}

/** Ends a holder this CLI started and no daemon of it serves; only the records that name it go. */
function endFreshHolder(p: Paths, holder: HolderInfo): void {
  if (holderAlive(holder)) {
    try {
      process.kill(holder.pid, "SIGKILL");
    } catch {}
  }
  removeHolderFiles(p, holder);
}

/** Starts holder and daemon unless running; serialized by a lock file. */
export async function ensureDaemon(): Promise<void> {
  const { closeSync, fstatSync, readFileSync, statSync } = nodeFs();
  const p = paths();
  ensurePrivateDir(p.runtimeDir);
  const lockFd = openPrivateAppend(`${p.runtimeDir}/daemon.lock`);
  try {
    await takeDaemonLock(lockFd, p);
    if ((await ping()) !== null) return;
    if (await answeredByLockOwner(p)) return;
    // The log first: a log burrow cannot open (a planted symlink) must stop
    // the start before a holder exists that nothing would end.
    const logPath = `${p.runtimeDir}/daemon.log`;
    let logFd = openPrivateAppend(logPath);
    if (fstatSync(logFd).size > 1 << 20) {
      // Keep the log from growing without bound across daemon restarts.
      closeSync(logFd);
      logFd = openPrivateAppend(logPath, true);
    }
    let logStart = fstatSync(logFd).size;
    // readHolder also finds a holder whose holder.json a logout removed (its
    // copy in the state dir): right after a logout and a kill -9 of the
    // daemon, that holder is restarting it, and for a few ms nobody holds
    // the state's lock. Waking it is right; a second holder is not (issue 19
    // item 2).
    const hadHolder = p.rootless ? readHolder(p) : null;
    let holder: Awaited<ReturnType<typeof ensureHolder>> | null;
    try {
      holder = p.rootless ? await ensureHolder(p) : null;
    } catch (e) {
      closeSync(logFd);
      throw e;
    }
    // Rootless, the holder supervises the daemon (src/userns/supervisor.ts):
    // a new holder starts one by itself, a live one is woken with SIGUSR1.
    // Rootful, a supervisor of its own does (src/client/root-supervisor.ts):
    // a live one is restarting its daemon right now (it exits rather than
    // wait when its daemon stops), so only a missing one is started. A
    // holder of an older burrow (`sleep infinity`) gets the daemon from the
    // launcher, as before.
    const supervised = !!holder && isSupervisor(holder.pid);
    if (supervised && hadHolder) process.kill(holder!.pid, "SIGUSR1");
    let rootSupervisor: { pid: number; startTime: string; fresh: boolean } | null = null;
    if (!p.rootless) {
      const live = readSupervisor(p);
      rootSupervisor = live ? { ...live, fresh: false } : { ...(await startSupervisorReady(p, logPath)), fresh: true };
    }
    let launcher: Bun.Subprocess | null = null;
    if (!supervised && !rootSupervisor) {
      launcher = spawnRole(ROLES.launch, [holder ? String(holder.pid) : "-"], {
        env: { BURROW_PATHS: JSON.stringify(p) },
        stdin: "ignore",
        stdout: logFd,
        stderr: logFd,
        detached: true,
      });
      launcher.unref();
    }
    closeSync(logFd);
    let exited = false;
    launcher?.exited.then(() => (exited = true));
    const gaveUp = () => {
      // The supervisor logs one line when it stops restarting a daemon.
      try {
        return readFileSync(logPath).subarray(logStart).toString("utf8").includes(SUPERVISOR_IDLE_LINE);
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 10_000;
    // A daemon found stopped or silent ends the wait, not the cleanup below.
    let refused: unknown = null;
    for (let i = 0; Date.now() < deadline; i++) {
      let pid: number | null;
      try {
        pid = await ping(i % 10 === 0);
      } catch (e) {
        refused = e;
        break;
      }
      if (pid !== null) {
        // A holder made for this start whose daemon is not the one that
        // answers (it lost the state's lock to a daemon that came back
        // meanwhile) holds nothing: end it, or it would wait forever.
        if (supervised && !hadHolder && parentOf(pid) !== holder!.pid) endFreshHolder(p, holder!);
        writeRecord(p, pid);
        return;
      }
      if (exited || (supervised && (gaveUp() || !holderAlive(holder!)))) break;
      if (rootSupervisor && (gaveUp() || !supervisorAlive(rootSupervisor))) {
        if (rootSupervisor.fresh) break;
        // The supervisor that was there stopped meanwhile (its daemon went
        // idle or was replaced just as we came): start our own, once.
        logStart = statSync(logPath, { throwIfNoEntry: false })?.size ?? 0;
        rootSupervisor = { ...(await startSupervisorReady(p, logPath)), fresh: true };
      }
      await Bun.sleep(i < 20 ? 2 : 20);
    }
    // Leave nothing behind: a daemon that never answered, and a holder made
    // just for it (one that was there before may hold others' sandboxes).
    if (launcher && !exited) launcher.kill("SIGKILL");
    if (rootSupervisor?.fresh && supervisorAlive(rootSupervisor)) {
      // The supervisor first, so that it restarts nothing; then its daemon.
      // (Only while it is still ours: a pid that died may be reused.)
      for (const pid of [rootSupervisor.pid, ...supervisorChildren(rootSupervisor.pid)]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    if (rootSupervisor?.fresh) removeSupervisorFile(p, rootSupervisor);
    if (holder && !hadHolder) endFreshHolder(p, holder);
    if (refused) throw refused;
    // The daemon that answers may be another holder's, come back while we
    // started ours (whose daemon then found the state locked and stopped).
    if (await answeredByLockOwner(p)) return;
    let tail = "";
    try {
      // Only what this start wrote: the log keeps earlier daemons' lines.
      const lines = readFileSync(logPath).subarray(logStart).toString("utf8").trim().split("\n");
      tail =
        lines.findLast((l) => l.startsWith("burrow daemon:") || l.startsWith("burrow:"))?.replace(/^burrow( daemon)?: /, "") ?? lines.slice(-3).join(" | ");
    } catch {}
    throw new BurrowError(`the burrow daemon did not start${tail ? `: ${tail}` : ""} (log: ${logPath})`, { kind: "daemon" });
  } finally {
    flock(lockFd, LOCK.UN);
    closeSync(lockFd);
  }
}
