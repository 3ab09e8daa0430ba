// Starting the daemon (and, rootless, the holder) when none answers: under
// a lock, so that ten concurrent CLIs start exactly one. Apart from
// client.ts, which every CLI call loads: a running daemon, the common case,
// needs none of this (issue 17).
import { BurrowError } from "../errors.ts";
import { controlSocket, type Paths } from "../paths.ts";
import { nodeFs } from "../lazy-node.ts";
import { ROLES, spawnRole } from "../roles.ts";
import { LOCK, flock } from "../sys/proc.ts";
import { ensureHolder, holderAlive, readHolder, removeHolderFiles, type HolderInfo } from "../userns/session.ts";
import { SUPERVISOR_IDLE_LINE, isSupervisor } from "../userns/supervisor.ts";
import { stateLockOwner } from "../state/lock.ts";
import { parentOf } from "../sys/processes.ts";
import { ensurePrivateDir, openPrivateAppend } from "./trust.ts";
import { writeRecord } from "./upgrade.ts";
import { takeDaemonLock } from "./deadline.ts";
import { readSupervisor, removeSupervisorFile, startSupervisorReady, supervisorAlive, supervisorChildren } from "./root-supervisor.ts";
import { paths, ping } from "./client.ts";

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
