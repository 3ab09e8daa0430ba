// Finding and signalling processes: a sandbox's, by namespace inode, and
// helpers', by pid and start time (pids are reused). A sandbox always has its own
// mount namespace, so "the processes of a sandbox" are those whose
// /proc/PID/ns/mnt has the sandbox's mount namespace inode.
//
// /proc/PID/stat is read with libc (src/sys/files.ts): the CLI asks it on
// every call, and node:fs costs its start ~1.4 ms to load (src/lazy-node.ts).
import { nodeFs } from "../lazy-node.ts";
import { lstatPath, readTextFile } from "./files.ts";
import { nsId } from "./ns.ts";

/** /proc/PID/stat's fields after the parenthesised command name (field 3 first); null when there is no such process. */
function statFields(pid: number): string | null {
  const stat = readTextFile(`/proc/${pid}/stat`);
  return stat === null ? null : stat.slice(stat.lastIndexOf(")") + 2);
}

/**
 * /proc/loadavg's pid fields ("0.10 0.20 0.30 RUNNING/TASKS LASTPID"): how
 * many tasks exist and the last pid handed out, in this pid namespace; null
 * when it will not say. Split, not matched: a regular expression compiled
 * on its first use costs the CLI's exit ~0.05 ms (madeNothingSince).
 */
function loadavgPids(): { threads: number; lastPid: number } | null {
  const fields = (readTextFile("/proc/loadavg") ?? "").trim().split(" ");
  const tasks = fields[3]?.slice(fields[3].indexOf("/") + 1) ?? "";
  const last = fields[4] ?? "";
  const count = (s: string) => s !== "" && [...s].every((c) => c >= "0" && c <= "9");
  return fields.length === 5 && fields[3]!.includes("/") && count(tasks) && count(last) ? { threads: Number(tasks), lastPid: Number(last) } : null;
}

/** How many pids after a command's madeNothingSince looks at before it says no. */
const PIDS_AFTER_CAP = 8;

/**
 * True when the process `pid` (a command that has exited and was waited
 * for) made no process: every pid the kernel handed out since it is a
 * thread of this process (Bun starts some as it goes), so nothing of the
 * command can be left. False whenever that cannot be told: another
 * process was made anywhere in this pid namespace meanwhile, more than a
 * few pids went, the counter wrapped, or /proc is not this namespace's.
 * Pids are handed out in turn and `pid` was taken until it was waited
 * for, so a later pid is one made after it (issue 17: the exit report's
 * answer is not waited for then).
 */
export function madeNothingSince(pid: number, last = loadavgPids()?.lastPid ?? null): boolean {
  if (last === null || last < pid || last - pid > PIDS_AFTER_CAP) return false;
  try {
    for (let p = pid + 1; p <= last; p++) if (lstatPath(`/proc/self/task/${p}`) === null) return false;
  } catch {
    return false;
  }
  return true;
}

export function pidsInMountNs(ino: number): number[] {
  return pidsInNs("mnt", ino);
}

/** Every process for which `test(pid)` holds; a test that throws (the process went, or is not ours to read) is false. */
export function pidsWhere(test: (pid: number) => boolean): number[] {
  const out: number[] = [];
  for (const entry of nodeFs().readdirSync("/proc")) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    try {
      if (test(Number(entry))) out.push(Number(entry));
    } catch {}
  }
  return out;
}

/** Processes whose namespace of `kind` has inode `ino` (its link reads "kind:[INODE]"). */
export function pidsInNs(kind: "mnt" | "net", ino: number): number[] {
  const want = `${kind}:[${ino}]`;
  return pidsWhere((pid) => nsId(`/proc/${pid}/ns/${kind}`) === want);
}

export function signalAll(pids: number[], signal: NodeJS.Signals | number): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {}
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` with the namespace pinned at `pin` held open, when the pin
 * still holds namespace `ino`; does nothing otherwise. A namespace's inode
 * names it only while it lives: the number of a freed one goes to the next
 * namespace made (seen: an `rm` after the release had unpinned the sandbox
 * SIGKILLed the new shared slirp4netns, whose --enable-sandbox makes a mount
 * namespace). The open fd keeps the namespace alive, so its number cannot
 * pass to another one while `fn` looks for its processes.
 */
export async function withNamespace(ino: number, pin: string | undefined, fn: () => void | Promise<void>): Promise<void> {
  if (pin === undefined) return fn(); // no pin to hold: the inode alone (a dead session's sandbox: killOtherSession)
  const { openSync, fstatSync, closeSync } = nodeFs();
  let fd: number;
  try {
    fd = openSync(pin, "r");
  } catch {
    return; // unpinned: its processes were killed before the pin went
  }
  try {
    if (fstatSync(fd).ino === ino) await fn();
  } finally {
    closeSync(fd);
  }
}

/**
 * SIGTERM, wait up to `timeoutMs`, then SIGKILL what is left; resolves when
 * all are gone. `pin`: the namespace's pin file (see withNamespace).
 */
export async function terminate(ino: number, timeoutMs: number, pin?: string): Promise<void> {
  await withNamespace(ino, pin, async () => {
    let pids = pidsInMountNs(ino);
    if (!pids.length) return;
    signalAll(pids, "SIGTERM");
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await Bun.sleep(10);
      pids = pidsInMountNs(ino);
      if (!pids.length) return;
    }
    await killNow(ino);
  });
}

/**
 * SIGKILLs everything in mount namespace `ino` until nothing is left. `pin`:
 * its pin file (see withNamespace). `since`: the kernel's pid counter taken
 * before the namespace could hold a process (pidCounter) and the pids known
 * to have come in before it (the command started ahead): only the pids
 * handed out since are looked at, not all of /proc, while pidsSince can
 * vouch for them.
 */
export async function killAll(ino: number, pin?: string, since?: PidsSince): Promise<void> {
  await withNamespace(ino, pin, () => killNow(ino, since));
}

/** A sandbox's pid counter at its create, and the pids known to be its own from before it (killAll's `since`). */
export interface PidsSince {
  mark: PidCounter;
  known: number[];
}

/**
 * The kernel's pid counter: the last pid handed out (/proc/loadavg's fifth
 * field, in this pid namespace), how many tasks were ever made
 * (/proc/stat's "processes") just before and just after that read, how
 * many exist now, and pid_max. null when /proc will not say.
 */
export interface PidCounter {
  lastPid: number;
  /** Read before lastPid: a mark's count (every pid after lastPid is counted by a later count). */
  forks: number;
  /** Read after lastPid: now's count (every pid up to lastPid is counted by it). */
  forksAfter: number;
  threads: number;
  pidMax: number;
}

function forksSoFar(): number | null {
  const n = /\nprocesses (\d+)\n/.exec(readTextFile("/proc/stat") ?? "")?.[1];
  return n === undefined ? null : Number(n);
}

export function pidCounter(): PidCounter | null {
  const forks = forksSoFar();
  const load = loadavgPids();
  const forksAfter = forksSoFar();
  const pidMax = (readTextFile("/proc/sys/kernel/pid_max") ?? "").trim();
  if (forks === null || forksAfter === null || !load || !/^\d+$/.test(pidMax)) return null;
  return { ...load, forks, forksAfter, pidMax: Number(pidMax) };
}

/**
 * The pids the kernel handed out after `mark` up to `now` (read in that
 * order, see pidCounter), or null when they cannot be told from older ones
 * or are more than `cap`. Pids are handed out in turn, on from the last
 * one, wrapping at pid_max (to 300, or to 1 in a child pid namespace), and
 * skipping those in use. Going once round the whole range takes at least
 * pid_max - 300 pids handed out or skipped; a skipped pid is one that was
 * in use (at most mark.threads of them from before the mark, and the ones
 * handed out since, which `forks` counts), so while 2 * forks + threads
 * stays below that, no pid after the mark can equal one from before it.
 */
export function pidsSince(mark: PidCounter, now: PidCounter, cap: number): number[] | null {
  const made = now.forksAfter - mark.forks;
  const room = Math.min(mark.pidMax, now.pidMax) - 300;
  if (made < 0 || 2 * made + mark.threads >= room) return null;
  const out: number[] = [];
  const add = (from: number, to: number): boolean => {
    for (let pid = from; pid <= to; pid++) {
      if (out.length >= cap) return false;
      out.push(pid);
    }
    return true;
  };
  const whole = now.lastPid >= mark.lastPid ? add(mark.lastPid + 1, now.lastPid) : add(mark.lastPid + 1, now.pidMax - 1) && add(1, now.lastPid);
  return whole ? out : null;
}

/** Is `pid` a process (not another one's thread) in mount namespace `want` ("mnt:[INODE]")? */
function leaderInNs(pid: number, want: string): boolean {
  if (pid === process.pid || nsId(`/proc/${pid}/ns/mnt`) !== want) return false;
  // /proc/TID is there for threads too: a thread of this daemon (a namespace Worker) is in the sandbox's namespace.
  return /^Tgid:\s*(\d+)$/m.exec(readTextFile(`/proc/${pid}/status`) ?? "")?.[1] === String(pid);
}

/** The processes of mount namespace `ino`: from the pids since `since.mark` when it vouches for them, else all of /proc. */
function processesOf(ino: number, since?: PidsSince): number[] {
  const now = since && pidCounter();
  // Past ~2000 pids a walk of /proc is cheaper than trying each number.
  const fresh = since && now ? pidsSince(since.mark, now, 2048) : null;
  if (!since || !fresh) return pidsInMountNs(ino);
  const want = `mnt:[${ino}]`;
  return [...new Set([...since.known, ...fresh])].filter((pid) => {
    try {
      return leaderInNs(pid, want);
    } catch {
      return false;
    }
  });
}

async function killNow(ino: number, since?: PidsSince): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const pids = processesOf(ino, since);
    if (!pids.length) return;
    signalAll(pids, "SIGKILL");
    await Bun.sleep(i < 10 ? 2 : 10);
  }
}

/**
 * SIGKILLs what is left of a sandbox of another, dead session, known only by
 * its namespace inodes (its pins went with that session's mount namespace).
 * An inode names a namespace only while it lives: once the sandbox's
 * processes are gone its number passes to the next namespace made, such as
 * the mount namespace of this session's new holder (seen, issue 19: a
 * restarted daemon "killed the dead session's sandbox" and with it its new
 * holder and itself). So a process counts only when its mount and UTS
 * namespaces both have the sandbox's numbers and its user namespace is not
 * ours: a dead session's processes keep that session's user namespace
 * alive, so its number cannot be ours.
 */
export async function killOtherSession(ino: { mnt: number; uts: number }): Promise<void> {
  const { statSync } = nodeFs();
  const own = statSync("/proc/self/ns/user").ino;
  const nsOf = (pid: number, kind: string) => {
    try {
      return statSync(`/proc/${pid}/ns/${kind}`).ino;
    } catch {
      return null;
    }
  };
  const theirs = () => pidsInMountNs(ino.mnt).filter((pid) => (!ino.uts || nsOf(pid, "uts") === ino.uts) && nsOf(pid, "user") !== own);
  for (let i = 0; i < 500; i++) {
    const pids = theirs();
    if (!pids.length) return;
    signalAll(pids, "SIGKILL");
    await Bun.sleep(i < 10 ? 2 : 10);
  }
}

/** Alive and not a zombie (kill(pid, 0) also succeeds for a zombie not yet reaped). */
export function isRunning(pid: number): boolean {
  try {
    // Field 3, after the parenthesised command name.
    const state = statFields(pid)?.[0];
    return state !== undefined && state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/**
 * Stops a helper this process may not be the parent of (a restarted
 * daemon's slirp4netns, a forked pasta): SIGTERM, then SIGKILL after
 * `graceMs`; resolves when `stillOurs()` no longer holds. The caller's check
 * keeps a reused pid from being signalled.
 */
export async function stopHelper(pid: number, stillOurs: () => boolean, graceMs = 2000): Promise<void> {
  if (!stillOurs()) return;
  signalAll([pid], "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (stillOurs() && Date.now() < deadline) await Bun.sleep(10);
  if (!stillOurs()) return;
  signalAll([pid], "SIGKILL");
  while (stillOurs()) await Bun.sleep(10);
}

/** The parent pid of `pid` (/proc/PID/stat field 4), or null when it is gone. */
export function parentOf(pid: number): number | null {
  try {
    const fields = statFields(pid);
    if (fields === null) return null;
    const ppid = Number(fields.split(" ")[1]);
    return Number.isInteger(ppid) ? ppid : null;
  } catch {
    return null;
  }
}

/** Field 22 of /proc/PID/stat: distinguishes a pid from its reuse. */
export function startTimeOf(pid: number): string | null {
  try {
    const fields = statFields(pid)?.split(" ");
    if (!fields) return null;
    // A zombie (Z) or dead (X) process has lost its namespaces: it counts
    // as gone even while its pid and start time linger (issue 10 item 5).
    if (fields[0] === "Z" || fields[0] === "X") return null;
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * The pid that holds a flock(2) lock on the file open as `fd`, from
 * /proc/locks (matched by device and inode), or null when none is listed.
 */
export function flockHolder(fd: number): number | null {
  let st: { dev: number; ino: number };
  let locks: string;
  try {
    const { fstatSync, readFileSync } = nodeFs();
    st = fstatSync(fd);
    locks = readFileSync("/proc/locks", "utf8");
  } catch {
    return null;
  }
  // glibc's major()/minor(), printed by the kernel as %02x:%02x:%lu.
  const major = ((st.dev >>> 8) & 0xfff) | (Math.floor(st.dev / 2 ** 32) & ~0xfff);
  const minor = (st.dev & 0xff) | ((st.dev >>> 12) & 0xfff00);
  const id = `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}:${st.ino}`;
  for (const line of locks.split("\n")) {
    const f = line.trim().split(/\s+/);
    // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF" (blocked waiters are marked "->").
    if (f[1] === "FLOCK" && f[5] === id) return Number(f[4]) || null;
  }
  return null;
}

/** Field 3 of /proc/PID/stat (R, S, D, T stopped, t traced, Z, X...), or null when there is no such process. */
export function processState(pid: number): string | null {
  try {
    // After the parenthesised command name.
    return statFields(pid)?.[0] ?? null;
  } catch {
    return null;
  }
}
