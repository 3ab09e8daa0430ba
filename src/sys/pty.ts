// Pseudo-terminals for `run -t` / `exec -t`: openpty, the window size
// ioctls, and making a pty the controlling terminal of the enter child.
// openPty and the window-size calls run in the CLI (host namespaces) or in
// the daemon; makeControllingTerminal runs in the single-threaded enter child
// just before its execve.
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { check, errno, libc, SysError } from "./libc.ts";

const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
const TIOCSCTTY = 0x540e;
const EPERM = 1;
const { EINTR, EAGAIN } = ERRNO;

export interface WinSize {
  rows: number;
  cols: number;
}

/**
 * Whether `fd` is a terminal, as node:tty's isatty says, without loading
 * node:tty (its net and stream modules cost a CLI start ~1 ms).
 */
export function isTerminal(fd: number): boolean {
  return libc.symbols.isatty(fd) === 1;
}

/** A new pty pair (both fds close-on-exec is not set: the slave goes to a child's stdio). */
export function openPty(size?: WinSize): { master: number; slave: number } {
  const fds = new Int32Array(2);
  const ws = size ? new Uint16Array([size.rows, size.cols, 0, 0]) : null;
  check("openpty", libc.symbols.openpty(ptr(fds), ptr(fds, 4), null, null, ws ? ptr(ws) : null));
  return { master: fds[0]!, slave: fds[1]! };
}

/** The window size of the terminal on `fd`, or null when `fd` is no terminal. */
export function getWinSize(fd: number): WinSize | null {
  const ws = new Uint16Array(4);
  if (libc.symbols.ioctl(fd, TIOCGWINSZ, ptr(ws)) === -1) return null;
  return { rows: ws[0]!, cols: ws[1]! };
}

/** Sets the window size of a pty (on its master): the kernel sends SIGWINCH to its foreground group. */
export function setWinSize(fd: number, size: WinSize): void {
  const ws = new Uint16Array([size.rows, size.cols, 0, 0]);
  check("ioctl", libc.symbols.ioctl(fd, TIOCSWINSZ, ptr(ws)), "TIOCSWINSZ");
}

/**
 * Makes the terminal on `fd` the calling process's controlling terminal: a
 * new session (a process that already leads one, as a detached child does,
 * keeps it), then TIOCSCTTY. The command execve()d next is the session
 * leader and its process group the terminal's foreground group, so ^C typed
 * into the pty reaches it as SIGINT.
 */
export function makeControllingTerminal(fd: number): void {
  if (libc.symbols.setsid() === -1) {
    const err = errno();
    if (err !== EPERM) throw new SysError("setsid", err);
  }
  check("ioctl", libc.symbols.ioctl(fd, TIOCSCTTY, null), "TIOCSCTTY");
}

/** struct termios is 60 bytes on Linux/glibc; room to spare. */
const TERMIOS_SIZE = 64;
const TCSANOW = 0;

/**
 * Puts the terminal on `fd` in raw mode as cfmakeraw(3) defines it (no
 * echo, no line editing, no signal keys, and no output processing: the
 * inner pty already turned \n into \r\n) and returns the settings to
 * restore. Node's setRawMode keeps OPOST, which would double every \r.
 */
export function makeRaw(fd: number): Uint8Array {
  const saved = new Uint8Array(TERMIOS_SIZE);
  check("tcgetattr", libc.symbols.tcgetattr(fd, ptr(saved)));
  const raw = saved.slice();
  libc.symbols.cfmakeraw(ptr(raw));
  check("tcsetattr", libc.symbols.tcsetattr(fd, TCSANOW, ptr(raw)));
  return saved;
}

/** Puts back what makeRaw saved. */
export function restoreTerminal(fd: number, saved: Uint8Array): void {
  check("tcsetattr", libc.symbols.tcsetattr(fd, TCSANOW, ptr(saved)));
}

const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;

/** O_NONBLOCK on the open file (shared by every fd of it: the master is ours alone). */
function setNonBlocking(fd: number): void {
  const flags = check("fcntl", libc.symbols.fcntl(fd, F_GETFL, 0));
  if (!(flags & O_NONBLOCK)) check("fcntl", libc.symbols.fcntl(fd, F_SETFL, flags | O_NONBLOCK));
}

/**
 * Reads a pty master until the last slave fd closes (EIO), calling `onData`
 * per chunk. The master is made non-blocking so Bun polls it on the event
 * loop: a blocking read (fs.createReadStream) parks a thread-pool thread per
 * pty, and a daemon with a few `-d -t` sandboxes had no thread left for its
 * own file I/O (measured: readFile stuck behind 12 idle ptys). Does not
 * close `master`. `stop()` ends the reading early. When `onData` returns a
 * promise, the next read waits for it.
 */
export function readPty(master: number, onData: (chunk: Uint8Array) => unknown): { done: Promise<void>; stop(): void } {
  setNonBlocking(master);
  const reader = Bun.file(master).stream().getReader();
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        // A promise back means "not faster than this" (the daemon's log throttle): wait for it.
        const pace = onData(value);
        if (pace instanceof Promise) await pace;
      }
    } catch {
      // EIO: no slave fd left, the normal end of a pty's output.
    }
  })();
  return {
    done,
    stop: () => void reader.cancel().catch(() => {}),
  };
}

/**
 * Writes all of `buf` to a pty master, made non-blocking (see readPty), waiting
 * out EAGAIN while the command does not read its input, until `cancelled()`.
 */
export async function writePty(master: number, buf: Uint8Array, cancelled: () => boolean = () => false): Promise<void> {
  setNonBlocking(master);
  let off = 0;
  while (off < buf.length && !cancelled()) {
    const rest = buf.subarray(off);
    const n = Number(libc.symbols.write(master, ptr(rest), rest.length));
    if (n >= 0) off += n;
    else {
      const err = errno();
      if (err === EAGAIN) await Bun.sleep(5);
      else if (err !== EINTR) throw new SysError("write", err, "pty");
    }
  }
}
