// seccomp user notification, the kernel side of `--accelerate` (issue 16;
// docs/accelerate.md has the design and the threat model).
//
// Three parts, all data or thin syscall wrappers:
// - the BPF program the enter helper installs (src/sandbox/enter-helper.c
//   `-F`): it notifies on the socket calls the supervisor answers and allows
//   everything else, so a call the filter does not name, or any call made
//   through another ABI, runs in the sandbox's own network namespace exactly
//   as without `--accelerate`. Acceleration is an optimisation on top of the
//   sandbox's confinement, never its boundary: letting a call through is
//   always the safe answer.
// - the probe: kernel >= 5.9 (SECCOMP_IOCTL_NOTIF_ADDFD) and a real
//   seccomp(SECCOMP_GET_NOTIF_SIZES) call.
// - the listener's ioctls and the SCM_RIGHTS receive that brings a listener
//   from the helper to the daemon.
import { type Pointer, ptr } from "bun:ffi";
import { check, errno, libc, SysError } from "./libc.ts";
import { POLLHUP, POLLIN, pollOnce } from "./unix-socket.ts";
import { nodeOs } from "../lazy-node.ts";

export type SeccompArch = "x86_64" | "aarch64";

/** AUDIT_ARCH_* of <linux/audit.h>: what seccomp_data.arch holds for a native call. */
export const AUDIT_ARCH: Record<SeccompArch, number> = { x86_64: 0xc000003e, aarch64: 0xc00000b7 };

/** The calls the filter can name, by architecture (x86_64: arch/x86/entry/syscalls/syscall_64.tbl; aarch64: the generic table, include/uapi/asm-generic/unistd.h). */
export const SOCKET_SYSCALLS: Record<SeccompArch, Record<"socket" | "bind" | "listen" | "connect" | "setsockopt" | "close", number>> = {
  x86_64: { socket: 41, connect: 42, bind: 49, listen: 50, setsockopt: 54, close: 3 },
  aarch64: { socket: 198, bind: 200, listen: 201, connect: 203, setsockopt: 208, close: 57 },
};

export type TrappedCall = keyof (typeof SOCKET_SYSCALLS)["x86_64"];

/**
 * What `--accelerate` traps: connect (outbound: a host socket in place of the
 * sandbox's) and bind (inbound: a published port bound on the host). Nothing
 * else: the supervisor reads a socket's type, flags and options from the
 * socket itself when it must replace it (pidfd_getfd), so setsockopt, close
 * and fcntl need no trap, and every untrapped call costs the command nothing.
 */
export const ACCELERATED_CALLS: readonly TrappedCall[] = ["connect", "bind"];

const SYS_SECCOMP: Record<SeccompArch, number> = { x86_64: 317, aarch64: 277 };

/** x86_64's x32 ABI marks its calls with this bit in nr. */
const X32_SYSCALL_BIT = 0x40000000;

// BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JGE_K = 0x35;
const BPF_RET_K = 0x06;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
/** Offsets in struct seccomp_data. */
const DATA_NR = 0;
const DATA_ARCH = 4;
/** BPF_MAXINSNS. */
export const BPF_MAX_INSTRUCTIONS = 4096;

export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** The machine this binary runs on, as seccomp names it; null for any other. */
export function hostSeccompArch(arch: string = process.arch): SeccompArch | null {
  return arch === "x64" ? "x86_64" : arch === "arm64" ? "aarch64" : null;
}

/** Offset of the low 32 bits of seccomp_data.args[2]: the sockaddr length of connect and bind. */
const DATA_ARG2_LOW = 32;
/** sizeof(struct sockaddr_in) and sizeof(struct sockaddr_in6). */
export const INET_SOCKADDR_LENGTHS = [16, 28] as const;

/**
 * The filter as instructions: a call of another architecture (i386 through
 * int 0x80, arm32 compat) or x86_64's x32 ABI is allowed without a look; a
 * native call whose number is in `calls` notifies the listener when its
 * sockaddr length (the third argument of connect and bind) is an IPv4 or
 * IPv6 one; the rest is allowed. The length test keeps the unix-socket
 * connects every program makes (nscd, D-Bus, a language runtime's own at
 * start) off the supervisor: a unix sockaddr of exactly 16 or 28 bytes is
 * still trapped and answered CONTINUE; an inet one passed with a larger
 * length (sizeof(struct sockaddr_storage)) runs unaccelerated, which is
 * always safe.
 */
export function notifyProgram(arch: SeccompArch, calls: readonly TrappedCall[] = ACCELERATED_CALLS): BpfInstruction[] {
  const numbers = [...new Set(calls.map((c) => SOCKET_SYSCALLS[arch][c]))];
  if (!numbers.length) throw new Error("a notify filter needs at least one call");
  const p: BpfInstruction[] = [];
  const add = (code: number, k: number, jt = 0, jf = 0) => p.push({ code, jt, jf, k }) - 1;
  // Jumps are relative to the next instruction, filled in once the targets are placed.
  add(BPF_LD_W_ABS, DATA_ARCH);
  const archTest = add(BPF_JMP_JEQ_K, AUDIT_ARCH[arch]);
  add(BPF_LD_W_ABS, DATA_NR);
  const x32 = arch === "x86_64" ? add(BPF_JMP_JGE_K, X32_SYSCALL_BIT) : -1;
  const nrTests = numbers.map((nr) => add(BPF_JMP_JEQ_K, nr));
  const allow = add(BPF_RET_K, SECCOMP_RET_ALLOW);
  const lengthCheck = add(BPF_LD_W_ABS, DATA_ARG2_LOW);
  const lengthTests = INET_SOCKADDR_LENGTHS.map((len) => add(BPF_JMP_JEQ_K, len));
  add(BPF_RET_K, SECCOMP_RET_ALLOW);
  const notify = add(BPF_RET_K, SECCOMP_RET_USER_NOTIF);
  p[archTest]!.jf = allow - archTest - 1;
  if (x32 >= 0) p[x32]!.jt = allow - x32 - 1;
  for (const t of nrTests) p[t]!.jt = lengthCheck - t - 1;
  for (const t of lengthTests) p[t]!.jt = notify - t - 1;
  return p;
}

/** struct sock_filter[], little-endian (both supported architectures are). */
export function encodeProgram(program: readonly BpfInstruction[]): Uint8Array {
  if (program.length > BPF_MAX_INSTRUCTIONS) throw new Error(`a seccomp filter has at most ${BPF_MAX_INSTRUCTIONS} instructions`);
  const out = new Uint8Array(program.length * 8);
  const view = new DataView(out.buffer);
  program.forEach((ins, i) => {
    if (ins.jt < 0 || ins.jt > 255 || ins.jf < 0 || ins.jf > 255) throw new Error(`instruction ${i}: jump out of range`);
    view.setUint16(i * 8, ins.code, true);
    view.setUint8(i * 8 + 2, ins.jt);
    view.setUint8(i * 8 + 3, ins.jf);
    view.setUint32(i * 8 + 4, ins.k >>> 0, true);
  });
  return out;
}

/** The bytes the enter helper's `-F` reads: this machine's filter. */
export function acceleratedFilter(): Uint8Array {
  const arch = hostSeccompArch();
  if (!arch) throw new Error(`--accelerate has no seccomp filter for ${process.arch}`);
  return encodeProgram(notifyProgram(arch));
}

// ------------------------------------------------------------ probe

const SECCOMP_GET_NOTIF_SIZES = 3;

export interface NotifSizes {
  notif: number;
  resp: number;
  data: number;
}

export type AccelerationSupport = { ok: true; sizes: NotifSizes; addfdSend: boolean } | { ok: false; missing: string };

/** "6.18.44-fc" -> [6, 18]; null when the release string is not a version. */
export function kernelVersion(rel: string = nodeOs().release()): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function atLeast(v: [number, number], major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

let support: AccelerationSupport | undefined;

/**
 * Can this machine accelerate? Kernel >= 5.9 for SECCOMP_IOCTL_NOTIF_ADDFD,
 * and seccomp itself answering SECCOMP_GET_NOTIF_SIZES (a kernel built
 * without CONFIG_SECCOMP_FILTER, or a container runtime's filter refusing
 * seccomp(2), fails here). `addfdSend` (>= 5.14) lets the supervisor install
 * the socket and answer the call in one step. Probed once per process.
 */
export function accelerationSupport(): AccelerationSupport {
  if (support) return support;
  const arch = hostSeccompArch();
  const version = kernelVersion();
  if (!arch) support = { ok: false, missing: `an x86_64 or aarch64 machine (this is ${process.arch})` };
  else if (!version || !atLeast(version, 5, 9))
    support = { ok: false, missing: `Linux 5.9 or later for SECCOMP_IOCTL_NOTIF_ADDFD (this kernel is ${nodeOs().release()})` };
  else {
    const sizes = new Uint16Array(3);
    const r = Number(libc.symbols.syscall(SYS_SECCOMP[arch], SECCOMP_GET_NOTIF_SIZES, 0, Number(ptr(sizes)), 0));
    if (r !== 0) support = { ok: false, missing: `seccomp user notification (seccomp(SECCOMP_GET_NOTIF_SIZES): ${new SysError("seccomp", errno()).message})` };
    else support = { ok: true, sizes: { notif: sizes[0]!, resp: sizes[1]!, data: sizes[2]! }, addfdSend: atLeast(version, 5, 14) };
  }
  return support;
}

// ------------------------------------------------------------ the listener

// ioctl numbers of linux/seccomp.h: _IOWR('!', 0, struct seccomp_notif) and so on.
const SECCOMP_IOCTL_NOTIF_RECV = 0xc0502100;
const SECCOMP_IOCTL_NOTIF_SEND = 0xc0182101;
const SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102;
export const SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1;

/** One trapped call, as struct seccomp_notif gives it. */
export interface Notification {
  /** The cookie every answer names. */
  id: bigint;
  pid: number;
  nr: number;
  arch: number;
  args: bigint[];
}

/**
 * Receives the next notification from `listener` (blocks unless the fd is
 * non-blocking). The buffer is the size the kernel reported and zeroed, as
 * SECCOMP_IOCTL_NOTIF_RECV requires; a caller that receives many passes its
 * own `buf` (at least that size), zeroed here, instead of one per call.
 */
export function receiveNotification(listener: number, sizes: NotifSizes, buf = new Uint8Array(Math.max(sizes.notif, 80))): Notification {
  if (buf.length < Math.max(sizes.notif, 80))
    throw new Error(`a notification buffer of ${buf.length} bytes: the kernel's struct seccomp_notif needs ${sizes.notif}`);
  buf.fill(0);
  check("ioctl", libc.symbols.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf), "SECCOMP_IOCTL_NOTIF_RECV");
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const args: bigint[] = [];
  for (let i = 0; i < 6; i++) args.push(v.getBigUint64(32 + i * 8, true));
  return { id: v.getBigUint64(0, true), pid: v.getUint32(8, true), nr: v.getInt32(16, true), arch: v.getUint32(20, true), args };
}

/**
 * Waits up to `timeoutMs` for `listener` to have a notification: "ready",
 * "gone" when no process uses the filter any more (POLLHUP), or "timeout".
 * SECCOMP_IOCTL_NOTIF_RECV itself blocks whatever the fd's flags say.
 */
export function waitNotification(listener: number, timeoutMs: number): "ready" | "gone" | "timeout" {
  const revents = pollOnce(listener, POLLIN, timeoutMs);
  return revents & POLLIN ? "ready" : revents & POLLHUP ? "gone" : "timeout";
}

const SECCOMP_IOCTL_NOTIF_SET_FLAGS = 0x40082104;
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1;

/**
 * Linux >= 6.6: the kernel wakes the answering thread and the trapped task
 * as one hand-off on the same CPU (made for supervisors like this one), which
 * takes a scheduler round trip off every trapped call. Best effort: false
 * where the kernel lacks it. The flags are the ioctl's argument itself
 * (seccomp_notify_set_flags takes `arg` by value): a pointer to them is
 * refused with EINVAL.
 */
export function syncWakeUp(listener: number): boolean {
  return libc.symbols.ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP as unknown as Pointer) === 0;
}

/** Is notification `id` still pending (its process alive, the call not interrupted)? Checked before acting on what was read for it. */
const validCookie = new BigUint64Array(1);
export function notificationValid(listener: number, id: bigint): boolean {
  validCookie[0] = id;
  return libc.symbols.ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, validCookie) === 0;
}

const responseBuffer = new Uint8Array(24);
const responseView = new DataView(responseBuffer.buffer);

/**
 * Answers notification `id`: `continue` lets the call run as the process
 * made it (in the sandbox's own namespaces); otherwise the call returns
 * `value`, or fails with `error` (a positive errno).
 */
export function answerNotification(listener: number, id: bigint, answer: { continue: true } | { value: number } | { error: number }): void {
  // One struct seccomp_notif_resp per thread (module state is per Worker), rewritten whole for each answer.
  const buf = responseBuffer;
  const v = responseView;
  buf.fill(0);
  v.setBigUint64(0, id, true);
  if ("continue" in answer) v.setUint32(20, SECCOMP_USER_NOTIF_FLAG_CONTINUE, true);
  else if ("error" in answer) v.setInt32(16, -answer.error, true);
  else v.setBigInt64(8, BigInt(answer.value), true);
  check("ioctl", libc.symbols.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, buf), "SECCOMP_IOCTL_NOTIF_SEND");
}

// ------------------------------------------------------------ acting for the trapped process

const F_DUPFD_CLOEXEC = 1030;

/** A close-on-exec duplicate of `fd` (the same open file), numbered 3 or above. */
export function duplicateFd(fd: number): number {
  return check("fcntl", libc.symbols.fcntl(fd, F_DUPFD_CLOEXEC, 3), "F_DUPFD_CLOEXEC");
}

/** pidfd_open(2) and pidfd_getfd(2): the same numbers on every architecture (the unified table from 424 on). */
const SYS_pidfd_open = 434;
const SYS_pidfd_getfd = 438;
const SECCOMP_IOCTL_NOTIF_ADDFD = 0x40182103;
const SECCOMP_ADDFD_FLAG_SETFD = 1;
export const O_CLOEXEC = 0o2000000;

/**
 * Reads `len` bytes at `addr` in process `pid` into memory of ours
 * (process_vm_readv): the supervisor decides on this copy only, so a thread
 * of the process rewriting its sockaddr after the trap changes nothing the
 * supervisor uses. Throws when the memory cannot be read whole.
 */
const localIovec = new BigUint64Array(2);
const remoteIovec = new BigUint64Array(2);
export function readProcessMemory(pid: number, addr: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  localIovec[0] = BigInt(ptr(out));
  localIovec[1] = BigInt(len);
  remoteIovec[0] = addr;
  remoteIovec[1] = BigInt(len);
  const n = Number(libc.symbols.process_vm_readv(pid, localIovec, 1, remoteIovec, 1, 0));
  check("process_vm_readv", n);
  if (n !== len) throw new Error(`process_vm_readv: read ${n} of ${len} bytes`);
  return out;
}

/** A copy of fd `targetFd` of process `pid`, close-on-exec, as our own fd (pidfd_getfd). */
export function copyProcessFd(pid: number, targetFd: number): number {
  const pidfd = check("pidfd_open", Number(libc.symbols.syscall(SYS_pidfd_open, pid, 0, 0, 0)));
  try {
    return check("pidfd_getfd", Number(libc.symbols.syscall(SYS_pidfd_getfd, pidfd, targetFd, 0, 0)));
  } finally {
    libc.symbols.close(pidfd);
  }
}

/** pidfds of the processes the supervisor copied fds from lately (pid -> pidfd), oldest first. */
const recentPidfds = new Map<number, number>();
const RECENT_PIDFDS = 32;

/**
 * copyProcessFd for the supervisor's hot path: a process's pidfd is kept for
 * its next trapped calls (two syscalls fewer each). A pidfd names one process
 * for good: while that process lives it has that pid, so a kept one is right
 * for a live trapped task of that pid; once it has died pidfd_getfd fails
 * (ESRCH, or EBADF for the fd) and a fresh pidfd is opened for the pid's
 * present owner. At most RECENT_PIDFDS are kept.
 */
export function copyTrappedFd(pid: number, targetFd: number): number {
  const kept = recentPidfds.get(pid);
  if (kept !== undefined) {
    const fd = Number(libc.symbols.syscall(SYS_pidfd_getfd, kept, targetFd, 0, 0));
    if (fd >= 0) return fd;
    recentPidfds.delete(pid);
    libc.symbols.close(kept);
  }
  const pidfd = check("pidfd_open", Number(libc.symbols.syscall(SYS_pidfd_open, pid, 0, 0, 0)));
  const fd = Number(libc.symbols.syscall(SYS_pidfd_getfd, pidfd, targetFd, 0, 0));
  if (fd < 0) {
    const e = errno();
    libc.symbols.close(pidfd);
    throw new SysError("pidfd_getfd", e);
  }
  keep(recentPidfds, pid, pidfd);
  return fd;
}

const fdinfoBuffer = new Uint8Array(512);
const pathBuffer = new Uint8Array(64);
const O_DIRECTORY = 0o200000;
/**
 * /proc/PID directories of the processes trapped lately (pid -> dirfd),
 * oldest first, kept as pidfds are: a lookup through one names the process
 * it was opened for, and fails (ENOENT) once that process is gone, even
 * when its pid is someone else's by then; a fresh one is opened then.
 */
const recentProcDirs = new Map<number, number>();

/** `text` as a NUL-terminated string in this thread's path buffer. */
function pathOf(text: string): Uint8Array {
  for (let i = 0; i < text.length; i++) pathBuffer[i] = text.charCodeAt(i);
  pathBuffer[text.length] = 0;
  return pathBuffer;
}

function keep(cache: Map<number, number>, pid: number, fd: number, evicted?: (pid: number) => void): void {
  cache.set(pid, fd);
  if (cache.size <= RECENT_PIDFDS) return;
  const [oldPid, oldFd] = cache.entries().next().value!;
  cache.delete(oldPid);
  libc.symbols.close(oldFd);
  evicted?.(oldPid);
}

/** `lookup(dirfd of /proc/PID)` through a kept directory, or a fresh one when the kept one's process is gone; -1 when both fail. */
function inProcDir(pid: number, lookup: (dir: number) => number): number {
  const kept = recentProcDirs.get(pid);
  if (kept !== undefined) {
    const r = lookup(kept);
    if (r >= 0) return r;
    recentProcDirs.delete(pid);
    libc.symbols.close(kept);
    forgetFdinfos(pid);
  }
  const dir = libc.symbols.open(pathOf(`/proc/${pid}`), O_DIRECTORY | O_CLOEXEC, 0);
  if (dir < 0) return -1;
  keep(recentProcDirs, pid, dir, forgetFdinfos);
  return lookup(dir);
}

/**
 * Kept /proc/PID/fdinfo/FD files of the processes trapped lately (pid ->
 * fd number -> our fd), at most FDINFO_PER_PROCESS a process, for as long
 * as that process's /proc directory is kept. procfs looks fd FD up in the
 * process's table again at each read from offset 0, so one pread gives the
 * flags of whatever file FD names now (a process's sockets mostly come back
 * on the same few numbers). Like a kept /proc/PID, a kept file names the
 * process it was opened for and fails (ENOENT) once that process is gone,
 * or while FD is not open in it.
 */
const recentFdinfos = new Map<number, Map<number, number>>();
const FDINFO_PER_PROCESS = 4;

function forgetFdinfos(pid: number): void {
  const files = recentFdinfos.get(pid);
  if (!files) return;
  recentFdinfos.delete(pid);
  for (const f of files.values()) libc.symbols.close(f);
}

/** Reads fdinfo of `fd` of `pid` into fdinfoBuffer: its length, or -1. */
function readFdinfo(pid: number, fd: number): number {
  const kept = recentFdinfos.get(pid)?.get(fd);
  if (kept !== undefined) {
    const n = Number(libc.symbols.pread(kept, fdinfoBuffer, fdinfoBuffer.length, 0));
    if (n > 0) return n;
    recentFdinfos.get(pid)!.delete(fd);
    libc.symbols.close(kept);
  }
  const f = inProcDir(pid, (dir) => libc.symbols.openat(dir, pathOf(`fdinfo/${fd}`), O_CLOEXEC, 0));
  if (f < 0) return -1;
  const n = Number(libc.symbols.pread(f, fdinfoBuffer, fdinfoBuffer.length, 0));
  if (n <= 0) {
    libc.symbols.close(f);
    return -1;
  }
  // Only while /proc/PID itself is kept (inProcDir drops the files of a pid it lets go).
  if (!recentProcDirs.has(pid)) {
    libc.symbols.close(f);
    return n;
  }
  // Looked up after inProcDir: a /proc/PID opened afresh (the pid is another process's now) dropped the old files.
  let files = recentFdinfos.get(pid);
  if (!files) recentFdinfos.set(pid, (files = new Map()));
  files.set(fd, f);
  if (files.size > FDINFO_PER_PROCESS) {
    const [oldFd, oldFile] = files.entries().next().value!;
    files.delete(oldFd);
    libc.symbols.close(oldFile);
  }
  return n;
}

/**
 * The open-file flags of fd `fd` of `pid` (O_NONBLOCK, ..., and O_CLOEXEC
 * for the fd's close-on-exec), from /proc/PID/fdinfo/FD's "flags:" (octal);
 * -1 when unreadable. One pread on a kept file, three syscalls the first time.
 */
export function processFdFlags(pid: number, fd: number): number {
  const n = readFdinfo(pid, fd);
  // "pos:\t0\nflags:\t02000002\n...": the flags' octal digits after "flags:" and blanks.
  for (let i = 0; i + 6 < n; i++) {
    if (fdinfoBuffer[i] !== 0x66 || fdinfoBuffer[i + 5] !== 0x3a || (i > 0 && fdinfoBuffer[i - 1] !== 0x0a)) continue; // "f....:" at a line's start
    let j = i + 6;
    while (j < n && (fdinfoBuffer[j] === 0x09 || fdinfoBuffer[j] === 0x20)) j++;
    let flags = 0;
    let digits = 0;
    for (; j < n && fdinfoBuffer[j]! >= 0x30 && fdinfoBuffer[j]! <= 0x37; digits++) flags = flags * 8 + (fdinfoBuffer[j++]! - 0x30);
    return digits ? flags : -1;
  }
  return -1;
}

/** Whether processFdFlags's `flags` say close-on-exec (false when they were unreadable, -1). */
export function closeOnExec(flags: number): boolean {
  return flags >= 0 && (flags & O_CLOEXEC) !== 0;
}

const linkBuffer = new Uint8Array(64);
const NS_NET = new TextEncoder().encode("ns/net\0");

/** The inode of `pid`'s network namespace, from its "net:[INODE]" link (one readlinkat through a kept /proc/PID); null when unreadable. */
export function netnsInodeOf(pid: number): number | null {
  const n = inProcDir(pid, (dir) => Number(libc.symbols.readlinkat(dir, NS_NET, linkBuffer, linkBuffer.length)));
  if (n < 7 || linkBuffer[n - 1] !== 0x5d) return null; // "net:[" ... "]"
  let inode = 0;
  for (let i = 5; i < n - 1; i++) {
    const d = linkBuffer[i]! - 0x30;
    if (d < 0 || d > 9) return null;
    inode = inode * 10 + d;
  }
  return inode;
}

/**
 * Installs our fd `ours` as fd `targetFd` of the process trapped in
 * notification `id` (SECCOMP_IOCTL_NOTIF_ADDFD with SETFD: the process's old
 * file at that number is closed, as dup2 would). The call itself is still
 * pending: answer it afterwards. Close-on-exec as the process had it.
 */
const addfdBuffer = new Uint8Array(24);
const addfdView = new DataView(addfdBuffer.buffer);
export function installProcessFd(listener: number, id: bigint, ours: number, targetFd: number, cloexec: boolean): void {
  const buf = addfdBuffer;
  const v = addfdView;
  v.setBigUint64(0, id, true);
  v.setUint32(8, SECCOMP_ADDFD_FLAG_SETFD, true);
  v.setUint32(12, ours, true);
  v.setUint32(16, targetFd, true);
  v.setUint32(20, cloexec ? O_CLOEXEC : 0, true);
  check("ioctl", libc.symbols.ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, buf), "SECCOMP_IOCTL_NOTIF_ADDFD");
}
