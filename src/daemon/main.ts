// The daemon: one per user, started on demand by the CLI (through the
// launcher, already inside the holder's user and mount namespaces when
// rootless), serving HTTP over the control socket. Exits when idle.
import { readFileSync } from "node:fs";
import { BurrowError, EXIT, messageOf } from "../errors.ts";
import { log, logPlainToFd } from "../log.ts";
import { controlSocket, resolvePaths, sandboxLog, sandboxStateDir } from "../paths.ts";
import { reattachLog } from "./log-copy.ts";
import type { Handlers, Op } from "../protocol.ts";
import { RequestRefused, parseArgs, readBody, routeOf, shortMessage } from "./request.ts";
import { ensurePrivateDir } from "../private-file.ts";
import { openState, restoreDeletedState, stateDbFile } from "../state/db.ts";
import type { Database } from "bun:sqlite";
import { checkOpen } from "../state/check.ts";
import { SandboxStore } from "../state/sandboxes.ts";
import { HelperLedger } from "../state/helpers.ts";
import { RequestsSeen } from "./requests-seen.ts";
import { diskFullError, SpaceReserve } from "../state/full.ts";
import { holderAlive, readHolder, type HolderInfo } from "../userns/session.ts";
import { SandboxService } from "./service.ts";
import { removeStaleEnterFifos } from "./enter-ahead.ts";
import { handlers } from "./handlers.ts";
import { networkHandlers } from "./networks.ts";
import { createPortDrivers } from "../ports/registry.ts";
import { createNetworkBackends, type NetworkBackends } from "../net/registry.ts";
import { LOCK, flock } from "../sys/proc.ts";
import { closeSync, existsSync, openSync } from "node:fs";
import { RuntimeOwner, holderFromParent } from "./ownership.ts";
import { acquireStateLock } from "../state/lock.ts";
import { DAEMON_EXIT } from "../userns/supervisor.ts";
import { ControlPeers, peerRefusal } from "./peers.ts";
import { geteuid } from "../sys/peercred.ts";
import { supervisorFromParent } from "../runtime-records.ts";
import { DaemonLogFile } from "./log-file.ts";
import { raiseOpenFileLimit } from "../sys/rlimit.ts";
import { DAEMON_MIN_OPEN_FILES, ROOTFUL_DAEMON_OPEN_FILES, openFilesRefusal } from "../open-files.ts";
import { prepareEnterHelper } from "../sandbox/enter-spawn.ts";

function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}

/** Not one of DAEMON_EXIT's "do not restart" codes: the supervisor restarts the daemon at once, on the file written back. */
const EXIT_RESTORED_STATE = 70;

/** Ops that need not wait for background releases (create waits for its name only). */
const UNSETTLED_OPS = new Set<Op>(["create", "started", "exited", "ping", "enter"]);

/** Ops that never wait for the exit reports before them (exitReports). */
const UNORDERED_OPS = new Set<Op>(["started", "exited", "ping"]);
/** The longest an exit report whose body does not come (a client that stalls) holds the requests after it. */
const EXIT_REPORT_HOLD_MS = 1000;

export async function daemonMain(): Promise<void> {
  const paths = resolvePaths();
  process.umask(0o077);
  // stderr is daemon.log: plain lines, without the cost of Node's stdio streams (src/log.ts).
  logPlainToFd(2);
  // Not the open-file limit of whichever shell started the CLI that started
  // us: all that is allowed (rootful: raised as systemd does for services),
  // and a refusal the CLI quotes when even that is too low (src/open-files.ts).
  const files = raiseOpenFileLimit(paths.rootless ? 0 : ROOTFUL_DAEMON_OPEN_FILES);
  if (files.hard < DAEMON_MIN_OPEN_FILES) {
    process.stderr.write(`burrow daemon: not starting: ${openFilesRefusal("the burrow daemon", files.hard, DAEMON_MIN_OPEN_FILES)}\n`);
    process.exit(1);
  }
  try {
    // The CLI checked them too; the daemon trusts nothing it did not check.
    ensurePrivateDir(paths.runtimeDir);
    ensurePrivateDir(paths.stateDir);
  } catch (e) {
    process.stderr.write(`burrow daemon: ${messageOf(e)}\n`);
    process.exit(1);
  }
  // The state database's lock first (src/daemon/ownership.ts): a second
  // daemon for one state never gets as far as reading it.
  const lock = await acquireStateLock(paths.stateDir).catch((e) => ({ heldBy: null, error: e as unknown }));
  if (!("fd" in lock)) {
    const why = "error" in lock ? messageOf(lock.error) : `another burrow daemon${lock.heldBy ? ` (pid ${lock.heldBy})` : ""} is active for this state`;
    process.stderr.write(`burrow daemon: not starting: ${why} (${paths.stateDir}/state.lock)\n`);
    process.exit(DAEMON_EXIT.stateLocked);
  }
  let holder: HolderInfo | null = null;
  if (paths.rootless) {
    // Started by the holder's supervisor: the holder is our parent, even
    // when a logout removed holder.json (the owner below writes it again).
    holder = process.env.BURROW_SUPERVISED === "1" ? holderFromParent() : readHolder(paths);
    if (!holder) {
      log.error("no live holder: the daemon must be started by the burrow CLI");
      process.exit(1);
    }
  }
  let store: SandboxStore;
  let stateDb: Database;
  let bookkeeping: { helpers: HelperLedger; requests: RequestsSeen; reserve: SpaceReserve };
  try {
    const db = openState(paths.stateDir);
    stateDb = db;
    // A damaged page would fail some later request half-way: refuse it now.
    const health = checkOpen(db, stateDbFile(paths.stateDir));
    if (!health.ok) throw new Error(health.detail);
    store = new SandboxStore(db);
    bookkeeping = { helpers: new HelperLedger(db, paths.stateDir), requests: new RequestsSeen(db), reserve: new SpaceReserve(`${paths.stateDir}/reserve`) };
    store.compact();
  } catch (e) {
    // One line the CLI can quote (it shows the log's last line).
    const why = messageOf(e);
    const fix = /newer than this burrow/.test(why)
      ? "run the burrow that made it, or upgrade this one"
      : "burrow system recover sets it aside, keeps what can still be read and stops the rest";
    process.stderr.write(`burrow daemon: cannot open its state in ${paths.stateDir}: ${why}; ${fix}\n`);
    process.exit(1);
  }
  const backends: NetworkBackends = createNetworkBackends({
    paths,
    sandboxes: () => store.all(),
    helpers: bookkeeping.helpers,
    report: (type, attrs) => store.event(type, null, attrs),
  });
  const session = holder
    ? { id: `${holder.pid}:${holder.startTime}`, enter: { user: `/proc/${holder.pid}/ns/user`, mnt: `/proc/${holder.pid}/ns/mnt` } }
    : { id: `host`, enter: { mnt: `/proc/${process.pid}/ns/mnt` } };
  const service = new SandboxService({ paths, store, session, bootId: bootId(), ports: createPortDrivers(), backends, bookkeeping });
  // Every request's connections are checked against our own uid first
  // (SO_PEERCRED, src/daemon/peers.ts).
  const peers = new ControlPeers(geteuid());
  // The socket and everything else this daemon keeps in the runtime
  // directory have one owner (src/daemon/ownership.ts).
  // Rootful, a daemon started by its supervisor keeps supervisor.json true
  // (src/client/root-supervisor.ts); rootless, holder.json names the supervisor.
  const supervisor = !paths.rootless && process.env.BURROW_SUPERVISED === "1" ? supervisorFromParent() : null;
  const owner = new RuntimeOwner(
    paths,
    holder,
    {
      serve: (unix) => {
        peers.listening(unix);
        return Bun.serve({ ...serveOptions, unix });
      },
      sandboxes: () => service.list(false),
      withLock: (id, fn) => service.withLock(id, fn),
      restoreShared: () => backends.networks.restore(),
      handOver: (why) => {
        log.warn(`handing over: ${why}`);
        void shutdown("handover", { handOver: true });
      },
    },
    supervisor,
  );
  // Listen first, reconcile meanwhile: a restart with many half-released
  // sandboxes must not run into the starting CLI's deadline. Requests other
  // than ping wait for it. Pins a logout removed are made again first.
  // First of all: the output of detached commands that outlived the last
  // daemon waits in their pipes, and a command that exits before it is
  // read takes it with it.
  for (const s of service.list(false)) {
    if (s.status !== "running" || !s.spec.detach) continue;
    const logPath = sandboxLog(paths, s);
    // Its directory removed with the whole state dir (written back, then this start): the command's
    // output goes on into a new log there instead of filling its pipe until it blocks.
    const dir = sandboxStateDir(paths, s.id);
    if (logPath.startsWith(`${dir}/`) && !existsSync(dir)) {
      try {
        ensurePrivateDir(`${paths.stateDir}/sandboxes`);
        ensurePrivateDir(dir);
      } catch (e) {
        log.warn(`log of ${logPath}: cannot make its directory again: ${messageOf(e)}`);
      }
    }
    reattachLog(s, logPath);
  }
  const reconciled = owner
    .restoreSandboxes()
    .then(() => service.reconcile())
    .catch((e) => log.warn(`reconcile: ${messageOf(e)}`));
  service.prepareSpare();
  removeStaleEnterFifos(paths);

  const sock = controlSocket(paths);
  const table = { ...handlers(service), ...networkHandlers(service) } satisfies Handlers;
  let lastActivity = Date.now();
  /**
   * Exit reports received and not yet taken in. A run whose command left
   * nothing does not wait for its exit report's answer (src/cli/run.ts), so
   * the next command (a `ps`, a run by the same name) can come while that
   * report's body is still being read: every request but these reports,
   * started and ping first waits until the ones that came before it are
   * registered as exits (then settled() and a create by the same name wait
   * for their releases, as for any exit). A report is counted as it is
   * routed, and requests are routed in the order they arrive.
   */
  const exitReports = new Set<Promise<void>>();
  const serve = async (req: Request): Promise<Response> => {
    let op: Op;
    let args: unknown;
    let taken: (() => void) | undefined;
    try {
      op = routeOf(new URL(req.url).pathname);
      if (op === "exited") {
        const report = new Promise<void>((resolve) => {
          taken = resolve;
          setTimeout(resolve, EXIT_REPORT_HOLD_MS).unref();
        });
        exitReports.add(report);
        void report.then(() => exitReports.delete(report));
      }
      args = parseArgs(op, await readBody(req));
    } catch (e) {
      taken?.();
      if (e instanceof RequestRefused) return Response.json(e.toJSON(), { status: e.status });
      log.error(e);
      return Response.json({ error: "the request could not be read", kind: "protocol", exitCode: EXIT.burrow }, { status: 400 });
    }
    service.inflight++;
    lastActivity = Date.now();
    try {
      if (op !== "ping") await reconciled;
      if (exitReports.size && !UNORDERED_OPS.has(op)) await Promise.all(exitReports);
      const t0 = performance.now();
      // What observes or changes state sees sandboxes fully released
      // (exits release their network in the background: service.exited).
      if (!UNSETTLED_OPS.has(op)) await service.settled();
      const handled = callHandler(table, op, args);
      // An exit report is registered by now (src/daemon/release.ts
      // recordExit): what comes after it waits for its release from here
      // (settled(), a create by the same name), not for this request.
      taken?.();
      const result = await handled;
      log.debug(`${op} handled in ${(performance.now() - t0).toFixed(1)} ms`);
      return Response.json(result ?? {});
    } catch (err) {
      // A full state filesystem is said as such (src/state/full.ts).
      const e = diskFullError(err, paths.stateDir) ?? err;
      if (e instanceof BurrowError) {
        log.debug(`${op} failed: ${e.stack}${e.cause instanceof Error ? `\ncaused by: ${e.cause.stack}` : ""}`);
        return Response.json({ ...e.toJSON(), error: shortMessage(e.message) }, { status: 400 });
      }
      log.error(e);
      return Response.json({ error: shortMessage(messageOf(e)), kind: "internal", exitCode: EXIT.burrow }, { status: 500 });
    } finally {
      taken?.();
      service.inflight--;
      lastActivity = Date.now();
    }
  };
  const serveOptions = {
    async fetch(req: Request) {
      // Before anything else, while this request's connection is surely
      // still open: no request is served while another user's process is
      // connected (it may be this one's).
      let foreign: ReturnType<ControlPeers["foreign"]>;
      try {
        foreign = peers.foreign();
      } catch (e) {
        // Unchecked is refused (the fd table cannot be read: out of fds).
        log.error(`checking the control socket's connections: ${messageOf(e)}`);
        return Response.json(
          { error: `cannot check who is connected to the control socket: ${shortMessage(messageOf(e))}`, kind: "internal", exitCode: EXIT.burrow },
          { status: 503 },
        );
      }
      if (foreign.length) return Response.json({ error: peerRefusal(foreign, sock), kind: "untrusted", exitCode: EXIT.burrow }, { status: 403 });
      return serve(req);
    },
  };
  try {
    owner.listen();
  } catch (e) {
    process.stderr.write(`burrow daemon: cannot listen: ${messageOf(e)}\n`);
    process.exit(DAEMON_EXIT.stateLocked);
  }
  log.debug(`daemon ${process.pid} listening on ${sock}`);
  // `run -d` and restarts start their commands through the C enter helper
  // once it is loaded (src/sandbox/enter-spawn.ts); until then, the Bun role.
  void prepareEnterHelper();

  const idleMs = Number(process.env.BURROW_IDLE_TIMEOUT ?? "30") * 1000;
  /** The last write-back failure said (housekeeping), so that it is not said again every turn. */
  let restoreFailed = "";
  let shuttingDown = false;
  const shutdown = async (why: string, opts: { handOver?: boolean } = {}) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.debug(`daemon exiting: ${why}`);
    owner.stop();
    // Networks made ahead first: no release below may make another.
    await backends.warm.drop().catch((e) => log.warn(`ending the networks made ahead: ${messageOf(e)}`));
    await service.settled();
    service.dropSpare();
    try {
      store.compact();
    } catch (e) {
      log.warn(`compacting the state: ${messageOf(e)}`);
    }
    // With no sandbox left, the session has nothing to keep: end the holder
    // too, but never while a CLI is starting one (it holds the lock).
    // Files are removed only while they are still this daemon's own.
    let endSession = false;
    // A state that cannot be read any more (damaged under us, then
    // `system recover`'s SIGTERM) counts as holding sandboxes: the session
    // stays, and the stop stays clean (an exception here would be a crash
    // the supervisor answers with restarts).
    let active = 1;
    try {
      active = service.active();
    } catch (e) {
      log.warn(`reading the state at exit: ${messageOf(e)}`);
    }
    if (holder && active === 0 && !opts.handOver) {
      const fd = openSync(`${paths.runtimeDir}/daemon.lock`, "a", 0o600);
      try {
        flock(fd, LOCK.EX | LOCK.NB);
        endSession = true;
        owner.releaseFiles(true);
        if (holderAlive(holder)) process.kill(holder.pid, "SIGKILL");
      } catch {
      } finally {
        closeSync(fd);
      }
    }
    if (!endSession && !opts.handOver) owner.releaseFiles(false);
    service.accelerator.close();
    // The resolver's sockets close with it; a sandbox's egress table stays in its netns for the next daemon.
    await service.egress.close().catch((e) => log.warn(`closing the egress resolver: ${messageOf(e)}`));
    process.exit(DAEMON_EXIT.stopped);
  };
  // Notices within a second a runtime directory or socket that is gone or
  // replaced (a logout's rm -rf) and rebuilds them.
  // Its own log too, once the directory is back (src/daemon/log-file.ts).
  const logFile = new DaemonLogFile(`${paths.runtimeDir}/daemon.log`);
  setInterval(() => {
    if (!shuttingDown)
      void reconciled
        .then(() => owner.check())
        .then(() => {
          if (logFile.check()) log.warn("daemon.log was removed (a logout?): logging to a new one");
        });
  }, 250);
  setInterval(
    async () => {
      try {
        await reconciled;
        // state.db (or its whole directory) removed under us: written back
        // from our handle, then a restart (the supervisor's, at once) opens it
        // as any start does. A write-back that fails is said once, not every
        // turn, and keeps nothing below from running: the daemon still reaps,
        // and still ends when idle.
        if (!shuttingDown) {
          try {
            if (restoreDeletedState(stateDb, paths.stateDir)) {
              log.warn(`${stateDbFile(paths.stateDir)} was deleted while the daemon ran: written back from the open database; restarting on it`);
              process.exit(EXIT_RESTORED_STATE);
            }
            restoreFailed = "";
          } catch (e) {
            const why = messageOf(e);
            if (why !== restoreFailed) log.warn(`cannot write ${stateDbFile(paths.stateDir)} back: ${why}`);
            restoreFailed = why;
          }
        }
        if (holder && !holderAlive(holder)) {
          log.warn("the rootless session holder died: every sandbox of this session is gone");
          await service.sessionLost();
          return shutdown("holder gone");
        }
        // Pins a logout removed are made again before the reaper looks at them.
        await owner.check();
        await service.reap();
        if (service.inflight === 0 && service.active() === 0 && service.releasing() === 0 && Date.now() - lastActivity > idleMs) await shutdown("idle");
      } catch (e) {
        log.warn(`housekeeping: ${messageOf(e)}`);
      }
    },
    Math.min(1000, Math.max(100, idleMs / 2)),
  );
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void shutdown(sig));
}

/**
 * Calls op's handler with its validated request. TypeScript cannot tie a
 * runtime `op` to its own handler's parameter type (a correlated union), so
 * the argument is erased here, once; `satisfies Handlers` above checked the
 * table, and the Ops schema validated `args` for this very op.
 */
function callHandler(table: Handlers, op: Op, args: unknown): unknown {
  return (table[op] as (a: unknown) => unknown)(args);
}
