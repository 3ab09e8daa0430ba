// One owner of the runtime directory at a time (issue 10 item 1).
//
// - The state database carries the lock (src/state/lock.ts): two daemons
//   for one state can never both be active.
// - The control socket is made under a private name and renamed into place,
//   and its inode is remembered: Bun's server.stop() unlinks its socket *by
//   path*, which is how a stale daemon used to delete a newer daemon's
//   control.sock. A daemon now removes control.sock and holder.json only
//   when they are still the ones it made (inode, holder pid + start time),
//   and keeps daemon.version (src/client/upgrade.ts) naming itself.
// - Every 250 ms the daemon checks that its runtime directory, its socket,
//   holder.json, the sandboxes' pins and their /etc files are still there.
//   systemd-logind removes $XDG_RUNTIME_DIR at logout; the daemon then
//   rebuilds them: the directory, a new socket, holder.json, and the pins.
//   Unlinking a pin file from the host's mount namespace detaches the bind
//   mount in the holder's namespace too (measured: 5 pin mounts in the
//   holder's mountinfo before `rm -rf`, 0 after), so a pin is made again
//   from a live process of the sandbox (/proc/PID/ns/KIND); a sandbox with
//   no live process has ended, and the reaper records that.
// - A daemon that finds another process listening on its socket path
//   hands over: it stops serving and exits, leaving its sandboxes running
//   for whoever owns that socket.
//
// Runs on the daemon's main thread, in the holder's user + mount namespaces
// when rootless (where the pins live).
import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { ensurePrivateDir } from "../private-file.ts";
import { readRecord, writeRecord } from "../runtime-records.ts";
import { messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { controlSocket, pinDir, sandboxDir, type Paths } from "../paths.ts";
import { pidsInNs } from "../sys/processes.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import { bind } from "../sys/mount.ts";
import { nsId } from "../sys/ns.ts";
import { peerCredOfSocket } from "../sys/peercred.ts";
import { startTimeOf } from "../sys/processes.ts";
import {
  readHolderFile,
  readHolderStateFile,
  removeHolderFiles,
  sameHolder,
  writeHolderFile,
  writeHolderStateFile,
  type HolderInfo,
} from "../userns/session.ts";
import { etcFiles, writeInPlace } from "../sandbox/files.ts";
import { readSupervisorFile, removeSupervisorFile, supervisorAlive, writeSupervisorFile, type SupervisorInfo } from "../runtime-records.ts";

function holderMap(env: string | undefined): HolderInfo["map"] {
  return env === "single" || env === "podman" ? env : "subid";
}

/**
 * The holder of a daemon started by the holder's supervisor: its parent
 * (src/userns/supervisor.ts). Null unless that parent shares our user
 * namespace, i.e. really is the holder we run in.
 */
export function holderFromParent(): HolderInfo | null {
  const pid = process.ppid;
  const startTime = startTimeOf(pid);
  const userns = nsId(`/proc/${pid}/ns/user`);
  const mntns = nsId(`/proc/${pid}/ns/mnt`);
  if (!startTime || !userns || !mntns || userns !== nsId("/proc/self/ns/user")) return null;
  return { pid, startTime, userns, mntns, map: holderMap(process.env.BURROW_HOLDER_MAP) };
}

interface Listener {
  stop(closeActive?: boolean): void;
}

export interface OwnerHooks {
  /** Starts the HTTP server on a unix socket at `path`. */
  serve(path: string): Listener;
  /** Live sandboxes (created or running) whose pins and files must exist. */
  sandboxes(): Sandbox[];
  /** Runs `fn` under the sandbox's lock (SandboxService.withLock). */
  withLock(id: string, fn: () => Promise<void>): Promise<void>;
  /** Another process listens on our socket path: stop and exit. */
  handOver(why: string): void;
  /** Namespaces shared by sandboxes (the rootless CNI one): restore theirs too. */
  restoreShared(): Promise<void>;
}

export class RuntimeOwner {
  private server: Listener | null = null;
  private socketIno = 0;
  private dirIno = 0;
  /** STATE_DIR/holder.json was found naming our holder (written if it did not). */
  private holderStateKept = false;
  private pinsIno: number | null = null;
  private checking: Promise<void> | null = null;
  private lastError = "";
  private serial = 0;

  constructor(
    readonly paths: Paths,
    readonly holder: HolderInfo | null,
    private readonly hooks: OwnerHooks,
    /** Rootful: the supervisor that started this daemon (src/client/root-supervisor.ts). */
    readonly supervisor: SupervisorInfo | null = null,
  ) {}

  get socket(): string {
    return controlSocket(this.paths);
  }

  /**
   * Serves on a private name, then renames it over control.sock (atomic:
   * a stale socket is replaced, never deleted first). Refuses when another
   * process answers on control.sock: that one owns the directory.
   */
  listen(): void {
    const other = this.otherListener();
    if (other !== null) throw new Error(`another process (pid ${other}) listens on ${this.socket}`);
    const tmp = `${this.paths.runtimeDir}/.control.${process.pid}.${++this.serial}.sock`;
    rmSync(tmp, { force: true });
    const server = this.hooks.serve(tmp);
    try {
      // chmod before the rename: the socket is never reachable at a looser mode.
      chmodSync(tmp, 0o600);
      const ino = statSync(tmp).ino;
      renameSync(tmp, this.socket);
      this.socketIno = ino;
    } catch (e) {
      server.stop(true);
      throw e;
    }
    // The old server listens on an inode nobody can reach any more; its
    // open connections finish. Its stop() unlinks its own private name
    // only, which no longer exists.
    this.server?.stop(false);
    this.server = server;
    this.dirIno = lstatSync(this.paths.runtimeDir).ino;
    this.keepRecord();
  }

  /**
   * daemon.version names this daemon (src/client/upgrade.ts). The CLI that
   * starts a daemon writes it, but a daemon restarted by the supervisor or
   * one whose directory a logout removed has no such CLI: without the
   * record the next CLI would take it for another version's daemon.
   */
  private keepRecord(): void {
    if (readRecord(this.paths)?.pid !== process.pid) writeRecord(this.paths, process.pid);
  }

  /** The pid of another process that answers on control.sock, or null. */
  private otherListener(): number | null {
    try {
      const st = lstatSync(this.socket, { throwIfNoEntry: false });
      if (!st?.isSocket()) return null;
      const peer = peerCredOfSocket(this.socket);
      return peer.pid === process.pid ? null : peer.pid;
    } catch {
      return null;
    }
  }

  ownsSocket(): boolean {
    return lstatSync(this.socket, { throwIfNoEntry: false })?.ino === this.socketIno;
  }

  /** Stops serving; the socket file is left for releaseFiles(). */
  stop(): void {
    this.server?.stop(true);
    this.server = null;
  }

  /**
   * Removes control.sock, supervisor.json and (with `holderToo`) holder.json,
   * each only if it is still ours. A rootful supervisor exits right after
   * this daemon's clean stop: its file goes with it.
   */
  releaseFiles(holderToo: boolean): void {
    if (this.socketIno && this.ownsSocket()) rmSync(this.socket, { force: true });
    if (this.supervisor) removeSupervisorFile(this.paths, this.supervisor);
    if (holderToo && this.holder) removeHolderFiles(this.paths, this.holder);
  }

  /** One look at everything this daemon owns in the runtime dir; rebuilds what is gone. */
  check(): Promise<void> {
    // One check at a time; a caller that comes during one waits for it.
    this.checking ??= this.checkOnce().finally(() => (this.checking = null));
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    try {
      await this.checkNow();
      this.lastError = "";
    } catch (e) {
      // Said once per distinct problem: it is retried every tick (the
      // directory's parent may come back with the next login).
      const msg = messageOf(e);
      if (msg !== this.lastError) log.warn(`cannot rebuild the runtime directory ${this.paths.runtimeDir}: ${msg}`);
      this.lastError = msg;
    }
  }

  private async checkNow(): Promise<void> {
    const dir = this.paths.runtimeDir;
    const dst = lstatSync(dir, { throwIfNoEntry: false });
    const dirChanged = !dst || dst.ino !== this.dirIno;
    if (dirChanged) {
      ensurePrivateDir(dir);
      log.warn(`the runtime directory ${dir} was ${dst ? "replaced" : "removed"}: rebuilding it`);
    }
    if (!this.ownsSocket()) {
      const other = this.otherListener();
      if (other !== null) return this.hooks.handOver(`another process (pid ${other}) now listens on ${this.socket}`);
      this.listen();
      log.warn(`the control socket ${this.socket} was gone: listening again`);
    }
    this.dirIno = lstatSync(dir).ino;
    this.keepRecord();
    if (this.holder) {
      const h = readHolderFile(this.paths);
      if (!sameHolder(h, this.holder)) {
        if (h && startTimeOf(h.pid) === h.startTime) log.warn(`holder.json named holder ${h.pid}; this daemon's sandboxes live in holder ${this.holder.pid}`);
        writeHolderFile(this.paths, this.holder);
      }
      // The copy beside state.db, by which a CLI finds this holder while
      // neither holder.json nor a daemon is there (src/userns/session.ts).
      // A logout does not touch the state dir: checked once, and again only
      // after a change of the runtime dir, not every 250 ms.
      if (!this.holderStateKept || dirChanged) {
        if (!sameHolder(readHolderStateFile(this.paths), this.holder)) writeHolderStateFile(this.paths, this.holder);
        this.holderStateKept = sameHolder(readHolderStateFile(this.paths), this.holder);
      }
    }
    if (this.supervisor) {
      const s = readSupervisorFile(this.paths);
      // (Not for a supervisor killed under us: the next start brings a new one.)
      if ((!s || s.pid !== this.supervisor.pid || s.startTime !== this.supervisor.startTime) && supervisorAlive(this.supervisor))
        writeSupervisorFile(this.paths, this.supervisor);
    }
    const pins = lstatSync(`${dir}/pins`, { throwIfNoEntry: false })?.ino ?? null;
    if (dirChanged || pins !== this.pinsIno) await this.restoreSandboxes();
    else if (this.sharedRetry && Date.now() >= this.sharedRetry.at) await this.restoreShared();
  }

  /** The last restore of the shared network namespace failed: when to try again, and the wait after that. */
  private sharedRetry: { at: number; waitMs: number } | null = null;
  private sharedError = "";

  /**
   * The shared network namespace's pin and DNS helpers again (the backends'
   * restore()). A check may run while a logout's rm -rf is still removing
   * what it makes, so what fails is tried again: after 250 ms, then ever
   * less often up to once a minute (a dnsmasq that cannot start at all must
   * not be retried four times a second for the daemon's life), and said
   * once per distinct problem.
   */
  private async restoreShared(): Promise<void> {
    try {
      await this.hooks.restoreShared();
      this.sharedRetry = null;
      this.sharedError = "";
    } catch (e) {
      const waitMs = Math.min(60_000, (this.sharedRetry?.waitMs ?? 125) * 2);
      this.sharedRetry = { at: Date.now() + waitMs, waitMs };
      const msg = messageOf(e);
      if (msg !== this.sharedError) log.warn(`cannot restore the shared network namespace (tried again in ${waitMs / 1000} s, then less often): ${msg}`);
      this.sharedError = msg;
    }
  }

  /**
   * Makes every live sandbox's pins and files again where they are gone.
   * Also run once at start, before reconcile: a daemon restarted after a
   * logout must not take lost pins for ended sandboxes.
   */
  async restoreSandboxes(): Promise<void> {
    await this.restoreShared();
    for (const listed of this.hooks.sandboxes()) {
      await this.hooks.withLock(listed.id, async () => {
        // As it is now, under its lock: one removed while we waited (rm -f)
        // has nothing to restore, and the inodes of its freed namespaces may
        // already be another namespace's (the kernel reuses them at once):
        // "restoring" it pinned a stranger's mount namespace and left it.
        const s = this.hooks.sandboxes().find((x) => x.id === listed.id);
        if (!s) return;
        try {
          this.restore(s);
        } catch (e) {
          log.warn(`sandbox ${s.name}: cannot make its pins again: ${messageOf(e)}`);
        }
      });
    }
    this.pinsIno = lstatSync(`${this.paths.runtimeDir}/pins`, { throwIfNoEntry: false })?.ino ?? null;
  }

  /**
   * Makes a sandbox's pins and files again from a live process of it.
   * Each pin is checked by the inode of the namespace it must hold.
   */
  private restore(s: Sandbox): void {
    const { pins, ino } = s.runtime;
    if (!pins || !ino) return;
    const procs = pidsInNs("mnt", ino.mnt);
    if (procs.length === 0) return; // ended: the reaper records it
    const kinds = (["net", "uts", "mnt"] as const).filter((k) => ino[k] && !holds(pins[k], ino[k]));
    if (kinds.length) {
      mkdirSync(pinDir(this.paths, s.id), { recursive: true, mode: 0o700 });
      for (const kind of kinds) {
        const from = procs.find((pid) => holds(`/proc/${pid}/ns/${kind}`, ino[kind]));
        if (from === undefined) {
          log.warn(`sandbox ${s.name}: no process holds its ${kind} namespace; its ${kind} pin stays gone`);
          continue;
        }
        mkdirSync(pins[kind].slice(0, pins[kind].lastIndexOf("/")), { recursive: true, mode: 0o700 });
        if (!existsSync(pins[kind])) writeFileSync(pins[kind], "");
        bind(`/proc/${from}/ns/${kind}`, pins[kind]);
      }
      log.warn(`sandbox ${s.name}: pinned its ${kinds.join(", ")} namespace${kinds.length > 1 ? "s" : ""} again from process ${procs[0]}`);
    }
    // The /etc files as the sandbox sees them (its binds still show the
    // old, unlinked files): later rewrites by path go to these copies.
    const sdir = sandboxDir(this.paths, s.id);
    if (!existsSync(sdir)) {
      mkdirSync(sdir, { recursive: true, mode: 0o700 });
      const files = etcFiles(sdir);
      for (const [path, inside] of [
        [files.hosts, "/etc/hosts"],
        [files.resolv, "/etc/resolv.conf"],
        [files.hostname, "/etc/hostname"],
      ] as const) {
        try {
          copyFileSync(`/proc/${procs[0]}/root${inside}`, path);
        } catch {}
      }
      // A row of 0.2.0 kept its log here: the command writes on into the
      // unlinked file; `logs` shows what comes after a restart (newer rows
      // log to the state dir, which a logout does not touch).
      if (!s.runtime.log) writeFileSync(`${sdir}/log`, "", { mode: 0o600 });
    }
  }
}

/**
 * The pins of `target` as fds the child inherits (3, 4, 5), named
 * /proc/self/fd/N in the target: a detached command started now joins its
 * sandbox even when a logout removes the pin files before the `__enter`
 * child gets to them (`run -d X; rm -rf $XDG_RUNTIME_DIR/burrow`, the
 * issue's repro, hit that window). close() drops the daemon's copies once
 * the child is spawned. Runs on the daemon's main thread (the pins are in
 * its mount namespace).
 */
export function pinsAsFds<T extends { net?: string | undefined; uts?: string | undefined; mnt?: string | undefined }>(
  target: T,
): { target: T; fds: number[]; close(): void } {
  const fds: number[] = [];
  const out = { ...target };
  try {
    for (const kind of ["net", "uts", "mnt"] as const) {
      const path = target[kind];
      if (!path) continue;
      fds.push(openSync(path, constants.O_RDONLY));
      out[kind] = `/proc/self/fd/${2 + fds.length}` as T[typeof kind];
    }
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    throw e;
  }
  const close = () => {
    for (const fd of fds) closeSync(fd);
  };
  return { target: out, fds, close };
}

/**
 * Rewrites one of a running sandbox's /etc files (`copy` in its runtime dir,
 * `inside` its path in the sandbox) so that the sandbox sees the change: the
 * copy, and, when a logout replaced the copy (the sandbox's bind mount still
 * shows the unlinked original), also the file as the sandbox sees it,
 * /proc/PID/root/etc/NAME, which is that original.
 *
 * The second write happens only through a process that is in the sandbox's
 * mount namespace, checked before and after the open (the pid may be an enter
 * child that has not joined yet, or a recycled pid): through any other
 * process it would have rewritten the host's own /etc file, which a rootful
 * daemon may. The file is opened without following a symbolic link and never
 * written when it is the daemon's own /etc file.
 */
export function rewriteEtcFile(copy: string, inside: string, s: Pick<Sandbox, "pid" | "runtime">, content: string): void {
  writeInPlace(copy, content);
  const { pid } = s;
  const mnt = s.runtime.ino?.mnt;
  if (!pid || !mnt) return;
  const inSandbox = () => holds(`/proc/${pid}/ns/mnt`, mnt);
  if (!inSandbox()) return;
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/root${inside}`, constants.O_WRONLY | constants.O_NOFOLLOW);
  } catch {
    return;
  }
  try {
    const seen = fstatSync(fd);
    const same = (o: { dev: number; ino: number } | undefined) => o !== undefined && o.dev === seen.dev && o.ino === seen.ino;
    if (!seen.isFile() || !inSandbox()) return;
    if (same(statSync(copy, { throwIfNoEntry: false })) || same(statSync(inside, { throwIfNoEntry: false }))) return;
    ftruncateSync(fd, 0);
    writeSync(fd, content, 0);
  } finally {
    closeSync(fd);
  }
}

function holds(path: string, ino: number): boolean {
  try {
    return statSync(path).ino === ino;
  } catch {
    return false;
  }
}
