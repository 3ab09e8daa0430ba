// The one place bun:ffi opens libc (STYLE.md #7). Every wrapper in src/sys
// calls through `libc` and turns a -1 return into a SysError with errno read
// straight after the call, on the same thread, before any other JS runs.
import { dlopen, FFIType, read, type ConvertFns, type Pointer, type Symbols } from "bun:ffi";
import { errnoName, type ErrnoName } from "./errno.ts";

const { i32, u32, i64, u64, ptr, cstring } = FFIType;

// The symbols come in groups, each opened (bun:ffi compiles a trampoline
// for every symbol it is given) on the first use of one of its symbols:
// compiling all of them cost every CLI start ~2.5 ms, and a `run` uses
// about a sixth of them (issue 17 item 2, docs/decisions.md "A CLI that
// starts fast"). The errno group is opened before any other, so that
// reading errno after a failed call never runs a dlopen (which may set
// errno) between the call and the read.
const GROUPS = {
  errno: {
    __errno_location: { args: [], returns: ptr },
    strerror: { args: [i32], returns: cstring },
  },
  // Files, fds and the process's ids: most commands need some of these.
  files: {
    open: { args: [ptr, i32, u32], returns: i32 },
    close: { args: [i32], returns: i32 },
    fcntl: { args: [i32, i32, i64], returns: i32 },
    dup2: { args: [i32, i32], returns: i32 },
    flock: { args: [i32, i32], returns: i32 },
    read: { args: [i32, ptr, u64], returns: i64 },
    pread: { args: [i32, ptr, u64, i64], returns: i64 },
    write: { args: [i32, ptr, u64], returns: i64 },
    getdents64: { args: [i32, ptr, u64], returns: i64 },
    memfd_create: { args: [ptr, u32], returns: i32 },
    chdir: { args: [ptr], returns: i32 },
    getuid: { args: [], returns: u32 },
    getgid: { args: [], returns: u32 },
    geteuid: { args: [], returns: u32 },
    gettid: { args: [], returns: i32 },
    kill: { args: [i32, i32], returns: i32 },
    // Is an fd a terminal: node:tty's isatty loads Node's net and stream
    // modules, ~1 ms of a CLI start (src/sys/pty.ts isTerminal).
    isatty: { args: [i32], returns: i32 },
    // The trust checks' stat and lstat, off node:fs (src/sys/files.ts).
    statx: { args: [i32, ptr, i32, u32, ptr], returns: i32 },
    // The open-file limit (src/sys/rlimit.ts).
    getrlimit: { args: [i32, ptr], returns: i32 },
    setrlimit: { args: [i32, ptr], returns: i32 },
    // The enter step's options FIFO (src/sys/files.ts enterFifo).
    mkfifoat: { args: [i32, ptr, u32], returns: i32 },
    unlink: { args: [ptr], returns: i32 },
  },
  // Sockets: the CLI's check of the control socket's listener (src/sys/peercred.ts), the forwarder.
  sockets: {
    socket: { args: [i32, i32, i32], returns: i32 },
    connect: { args: [i32, ptr, u32], returns: i32 },
    send: { args: [i32, ptr, u64, i32], returns: i64 },
    bind: { args: [i32, ptr, u32], returns: i32 },
    listen: { args: [i32, i32], returns: i32 },
    accept4: { args: [i32, ptr, ptr, i32], returns: i32 },
    shutdown: { args: [i32, i32], returns: i32 },
    getsockname: { args: [i32, ptr, ptr], returns: i32 },
    getpeername: { args: [i32, ptr, ptr], returns: i32 },
    if_nametoindex: { args: [ptr], returns: u32 },
    setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
    getsockopt: { args: [i32, i32, i32, ptr, ptr], returns: i32 },
    recvfrom: { args: [i32, ptr, u64, i32, ptr, ptr], returns: i64 },
    sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i64 },
    ioctl: { args: [i32, u64, ptr], returns: i32 },
  },
  // Namespaces, mounts and the enter step.
  namespaces: {
    unshare: { args: [i32], returns: i32 },
    setns: { args: [i32, i32], returns: i32 },
    mount: { args: [ptr, ptr, ptr, u64, ptr], returns: i32 },
    umount2: { args: [ptr, i32], returns: i32 },
    sethostname: { args: [ptr, u64], returns: i32 },
    execve: { args: [ptr, ptr, ptr], returns: i32 },
    setsid: { args: [], returns: i32 },
    signal: { args: [i32, ptr], returns: ptr },
    // Checking a namespace path from a request (src/sys/ns.ts).
    fstatfs: { args: [i32, ptr], returns: i32 },
    sched_setaffinity: { args: [i32, u64, ptr], returns: i32 },
    // --user (src/sys/ids.ts).
    setgroups: { args: [u64, ptr], returns: i32 },
    setresuid: { args: [u32, u32, u32], returns: i32 },
    setresgid: { args: [u32, u32, u32], returns: i32 },
    // The sandboxed command's capabilities and Landlock domain (src/sys/caps.ts).
    prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
    capget: { args: [ptr, ptr], returns: i32 },
    capset: { args: [ptr, ptr], returns: i32 },
    // Every argument given: the kernel reads all that the call takes, set or not.
    syscall: { args: [i64, i64, i64, i64, i64], returns: i64 },
  },
  // The port forwarder's relay (src/sys/splice.ts, src/sys/netio.ts).
  relay: {
    pipe2: { args: [ptr, i32], returns: i32 },
    splice: { args: [i32, ptr, i32, ptr, u64, u32], returns: i64 },
    epoll_create1: { args: [i32], returns: i32 },
    epoll_ctl: { args: [i32, i32, i32, ptr], returns: i32 },
    epoll_wait: { args: [i32, ptr, i32, i32], returns: i32 },
  },
  // --accelerate (src/sys/seccomp.ts, unix-socket.ts, socket-twin.ts): the
  // listener the enter helper hands over, and acting for a trapped process.
  accelerate: {
    socketpair: { args: [i32, i32, i32, ptr], returns: i32 },
    recvmsg: { args: [i32, ptr, i32], returns: i64 },
    poll: { args: [ptr, u64, i32], returns: i32 },
    process_vm_readv: { args: [i32, ptr, u64, ptr, u64, u64], returns: i64 },
    // The supervisor's per-call look at the trapped task: its netns link, its fd's flags (src/sys/seccomp.ts).
    readlinkat: { args: [i32, ptr, ptr, u64], returns: i64 },
    openat: { args: [i32, ptr, i32, u32], returns: i32 },
  },
  // The CLI's exit with its address space's teardown left behind (src/sys/exit.ts).
  exit: {
    clone: { args: [ptr, ptr, i32, ptr, ptr, ptr, ptr], returns: i32 },
    dlsym: { args: [ptr, ptr], returns: ptr },
    pthread_sigmask: { args: [i32, ptr, ptr], returns: i32 },
    close_range: { args: [u32, u32, i32], returns: i32 },
  },
  // Pseudo-terminals (src/sys/pty.ts).
  terminals: {
    openpty: { args: [ptr, ptr, ptr, ptr, ptr], returns: i32 },
    tcgetattr: { args: [i32, ptr], returns: i32 },
    tcsetattr: { args: [i32, i32, ptr], returns: i32 },
    cfmakeraw: { args: [ptr], returns: FFIType.void },
  },
} as const;

type Groups = typeof GROUPS;
type AllSymbols = { [G in keyof Groups]: Groups[G] }[keyof Groups];
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type Table = UnionToIntersection<AllSymbols>;
type LibcSymbols = ConvertFns<Table & Symbols>;

const opened: Array<{ close(): void }> = [];
const symbols = {} as LibcSymbols;

/** Opens one group and puts its symbols on `symbols` as plain values (no getter after the first use). */
function openGroup(group: keyof Groups): void {
  if (group !== "errno" && !opened.length) openGroup("errno");
  const lib = dlopen("libc.so.6", GROUPS[group] as unknown as Symbols);
  opened.push(lib);
  for (const [name, fn] of Object.entries(lib.symbols)) Object.defineProperty(symbols, name, { value: fn, enumerable: true, configurable: false });
}

for (const group of Object.keys(GROUPS) as Array<keyof Groups>) {
  for (const name of Object.keys(GROUPS[group])) {
    Object.defineProperty(symbols, name, {
      configurable: true,
      enumerable: true,
      get() {
        openGroup(group);
        return (symbols as Record<string, unknown>)[name];
      },
    });
  }
}

/** libc through bun:ffi: `libc.symbols.NAME(...)`, each group opened on first use. */
export const libc = {
  symbols,
  /** Frees every group this thread opened (exitWorker). */
  close(): void {
    for (const lib of opened.splice(0)) lib.close();
  },
};

const sym = libc.symbols;

/**
 * Ends the calling Worker. First frees this thread's `dlopen` of libc (the
 * machine code bun:ffi compiled for every symbol above): Bun does not free
 * it when a Worker ends, which cost the daemon ~9 KB of RSS per namespace
 * Worker (one per sandbox). Nothing on this thread may call libc afterwards,
 * hence the exit in the same step. Worker threads only: each thread has its
 * own `libc` object, so the main thread's is untouched.
 */
export function exitWorker(code: number): never {
  libc.close();
  process.exit(code);
}

export function errno(): number {
  return read.i32(sym.__errno_location() as Pointer, 0);
}

export class SysError extends Error {
  readonly syscall: string;
  readonly errno: number;
  readonly code: string;
  constructor(syscall: string, err: number, detail?: string) {
    const code = errnoName(err);
    const human = String(sym.strerror(err));
    super(`${syscall}${detail ? `(${detail})` : ""}: ${human} (${code})`);
    this.name = "SysError";
    this.syscall = syscall;
    this.errno = err;
    this.code = code;
  }
}

/** Is `e` a SysError with one of these codes (errno names such as "EINVAL")? */
export function isSysError(e: unknown, ...codes: ErrnoName[]): e is SysError {
  return e instanceof SysError && (codes as string[]).includes(e.code);
}

/** Throws SysError when a libc call returned -1; returns the value otherwise. */
export function check(syscall: string, ret: number, detail?: string): number {
  if (ret === -1) throw new SysError(syscall, errno(), detail);
  return ret;
}

/** A NUL-terminated copy of a string; keep the Buffer alive while its pointer is used. */
export function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}
