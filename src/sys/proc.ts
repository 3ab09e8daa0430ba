// Process-level calls: execve, setsid, flock, fcntl record locks, sethostname.
import { ptr } from "bun:ffi";
import { check, cstr, errno, libc, SysError } from "./libc.ts";

/** Replaces the calling process. Only returns by throwing SysError. */
export function execve(path: string, argv: string[], env: Record<string, string | undefined>): never {
  const keep: Buffer[] = [];
  const list = (items: string[]) => {
    const arr = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      const b = cstr(s);
      keep.push(b);
      arr[i] = BigInt(ptr(b));
    });
    arr[items.length] = 0n;
    return arr;
  };
  const envList = Object.entries(env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  const p = cstr(path);
  const a = list(argv);
  const e = list(envList);
  check("execve", libc.symbols.execve(p, a, e), path);
  throw new Error("unreachable");
}

/** SIGPIPE and SIGXFSZ: Bun ignores both, and an ignored signal stays ignored across execve. */
const BUN_IGNORED_SIGNALS = [13, 25];

/**
 * Gives SIGPIPE and SIGXFSZ back their default action before an execve, as a
 * shell or podman leaves them: a command started with them ignored would
 * see EPIPE instead of dying (`yes | head -1` would never end).
 */
export function restoreDefaultSignals(): void {
  for (const sig of BUN_IGNORED_SIGNALS) libc.symbols.signal(sig, null);
}

export function setsid(): number {
  return check("setsid", libc.symbols.setsid());
}

export function sethostname(name: string): void {
  const b = Buffer.from(name, "utf8");
  check("sethostname", libc.symbols.sethostname(b, b.length), name);
}

export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

/** flock(2) on an open fd; blocks the calling thread for LOCK.EX without NB. */
export function flock(fd: number, op: number): void {
  check("flock", libc.symbols.flock(fd, op));
}

// fcntl(2) record locks on a whole file, as open file description (OFD)
// locks: held by the open file, not the process, so closing another fd of
// the same file elsewhere in the daemon never drops them (a classic POSIX
// lock would be), and they conflict with the classic POSIX locks other
// programs take (podman's lockfile package: F_SETLKW, F_WRLCK).
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const EAGAIN = 11;
const EACCES = 13;

/** struct flock (x86_64 and aarch64): l_type, l_whence, l_start, l_len (whole file), l_pid. */
function flockStruct(type: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeInt16LE(type, 0);
  return b;
}

/**
 * Takes a whole-file OFD record lock on `fd` without waiting: exclusive
 * (write) or shared (read). False when another holder's lock conflicts.
 */
export function tryRecordLock(fd: number, exclusive: boolean): boolean {
  const l = flockStruct(exclusive ? F_WRLCK : F_RDLCK);
  if (libc.symbols.fcntl(fd, F_OFD_SETLK, ptr(l)) === 0) return true;
  const err = errno();
  if (err === EAGAIN || err === EACCES) return false;
  throw new SysError("fcntl", err, "F_OFD_SETLK");
}

/** Who holds a lock that conflicts with an exclusive one on `fd`: a pid (a classic POSIX lock's holder), -1 (an OFD lock), or null (none). */
export function recordLockHolder(fd: number): number | null {
  const l = flockStruct(F_WRLCK);
  check("fcntl", libc.symbols.fcntl(fd, F_OFD_GETLK, ptr(l)), "F_OFD_GETLK");
  return l.readInt16LE(0) === F_UNLCK ? null : l.readInt32LE(24);
}

export function getuid(): number {
  return libc.symbols.getuid();
}

export function getgid(): number {
  return libc.symbols.getgid();
}

export function chdir(dir: string): void {
  check("chdir", libc.symbols.chdir(cstr(dir)), dir);
}

/** Sets FD_CLOEXEC: `fd` stays usable until a successful execve closes it. */
export function closeOnExec(fd: number): void {
  const F_SETFD = 2;
  const FD_CLOEXEC = 1;
  check("fcntl", libc.symbols.fcntl(fd, F_SETFD, FD_CLOEXEC));
}

export function dup2(oldfd: number, newfd: number): void {
  check("dup2", libc.symbols.dup2(oldfd, newfd));
}

/** Pins the calling thread to one CPU (sched_setaffinity with pid 0 = this thread). */
export function pinToCpu(cpu: number): void {
  const mask = new BigUint64Array(16); // 1024 CPUs
  mask[cpu >> 6] = 1n << BigInt(cpu & 63);
  check("sched_setaffinity", libc.symbols.sched_setaffinity(0, mask.byteLength, mask), `cpu ${cpu}`);
}
