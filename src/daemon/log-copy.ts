// A detached sandbox's output on its way to the log (daemon, main thread).
//
// `run -d`: the command's stdout and stderr are two pipes the daemon reads
// and writes to `ctr.log` in podman's k8s-file format (src/sandbox-log.ts):
// a time and a stream per line, a size cap with rotation, a bounded copy
// rate. The command's end is the pipe opened again O_RDWR (through
// /proc/self/fd), so the pipe always has a reader, the command's own fd:
// when the daemon dies, the command's writes wait in the pipe (1 MiB)
// instead of dying of SIGPIPE, and the next daemon opens the pipes again
// through the command's /proc/PID/fd/1 and 2 (reattachLog) and goes on
// copying. Anonymous pipes, not named ones in the sandbox's directory: a
// mkfifo costs as much as a file on the state dir's disk (~0.5-0.8 ms each
// here), a pipe a few microseconds.
// `run -d -t`: the pty master's output goes through the same writer
// (src/daemon/pty-log.ts).
// Rows made by earlier builds name a plain `log`: their command keeps
// writing straight into it, as it did.
import { closeSync, constants, fstatSync, openSync, renameSync, writeSync } from "node:fs";
import { openPrivateAppend } from "../private-file.ts";
import { messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { readHelperConf } from "../machine/containers-conf.ts";
import {
  isStampedLog,
  keepNewest,
  lastRecord,
  lineEndLength,
  type LogStream,
  logTime,
  MAX_RECORD_TEXT,
  rotatedLog,
  stampChunk,
  takeOldest,
} from "../sandbox-log.ts";
import { bytesReadable, pipe, setPipeSize } from "../sys/sockets.ts";
import { ptyToLog } from "./pty-log.ts";

/** The bound when containers.conf sets none (podman's default is unlimited; a `yes` loop wrote 4.4 GB in 12 s). */
const DEFAULT_LOG_SIZE_MAX = 64 * 1024 * 1024;
/** The smallest bound: each half holds several whole records of up to 8 KiB (podman's floor is 8 KiB). */
const MIN_LOG_SIZE_MAX = 64 * 1024;
/**
 * The most a stream of a sandbox costs the daemon: this many bytes of log a
 * second, after a burst of as many. A command that writes faster waits on
 * its full pipe (it is slowed, never stopped); measured: a `yes` sandbox
 * then costs the daemon 8-18 % of one core here (docs/decisions.md).
 */
const COPY_RATE = 16 * 1024 * 1024;
/** Room in each pipe: what a command may write while the daemon is away (a restart takes ~55 ms). */
const PIPE_SIZE = 1024 * 1024;

let sizeMax: number | undefined;

/** containers.conf `[containers] log_size_max` (bytes; -1: no bound), read once per daemon. */
function logSizeMax(): number {
  if (sizeMax !== undefined) return sizeMax;
  try {
    const conf = readHelperConf().logSizeMax;
    sizeMax = conf === undefined ? DEFAULT_LOG_SIZE_MAX : conf <= 0 ? -1 : Math.max(conf, MIN_LOG_SIZE_MAX);
  } catch (e) {
    log.warn(`containers.conf: ${messageOf(e)}; logs are capped at the default ${DEFAULT_LOG_SIZE_MAX} bytes`);
    sizeMax = DEFAULT_LOG_SIZE_MAX;
  }
  return sizeMax;
}

/**
 * One sandbox's ctr.log, shared by its stdout and stderr copies (and a
 * restart's). With a bound, the file holds at most half of it (less one
 * record's room): when a write would pass that, ctr.log becomes ctr.log.1
 * (replacing the older one) and a new ctr.log starts, so the two hold at
 * most the bound and always nearly the newest half of it or more. A file
 * never begins inside a line: a line left open (a P record) is ended in
 * the file it began in, so `logs` never shows a line's tail as a line.
 */
export class LogWriter {
  private fd: number;
  private size: number;
  users = 0;

  constructor(
    readonly path: string,
    private readonly max: number,
  ) {
    this.fd = openPrivateAppend(path);
    this.size = fstatSync(this.fd).size;
  }

  /** Streams whose last record in the current file is a P: their line goes on in the next record. */
  private readonly openLines = new Set<LogStream>();

  write(stamped: Uint8Array): void {
    if (this.max <= 0) {
      this.append(stamped);
      return;
    }
    // Each file holds at most `half`, plus the end of one line (below).
    const half = Math.floor(this.max / 2) - LINE_END_ALLOWANCE;
    // What would be rotated out within this write anyway is never written;
    // the rest goes in pieces that each fit a file, so the two files are
    // always an unbroken run of the newest output.
    let rest = keepNewest(stamped, this.max);
    if (rest.length < stamped.length) {
      // Older output is gone, and with it the start of the line the kept
      // part may begin inside: start at the next whole line, in a new file
      // (the current one may end inside a line this chunk's lost start closed).
      rest = rest.subarray(lineEndLength(rest));
      if (this.size > 0) this.rotate();
    }
    while (rest.length) {
      // The current file is filled up to its half before it rotates, so the
      // older file always holds nearly half the bound.
      let piece = takeOldest(rest, Math.max(half - this.size, 1));
      if (this.size > 0 && this.size + piece.length > half) {
        // A file never begins inside a line: the end of a line this file
        // left open is written here first (one record's worth at most).
        const stream = lastRecord(piece)?.stream;
        const end = stream && this.openLines.has(stream) ? lineEndLength(piece) : 0;
        if (end > 0 && end <= LINE_END_ALLOWANCE) piece = piece.subarray(0, end);
        else this.rotate();
      }
      this.append(piece);
      rest = rest.subarray(piece.length);
    }
  }

  private append(buf: Uint8Array): void {
    const last = lastRecord(buf);
    if (last?.partial) this.openLines.add(last.stream);
    else if (last) this.openLines.delete(last.stream);
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off, buf.length - off);
      this.size += buf.length;
    } catch (e) {
      // A full disk loses output, not the sandbox (podman's conmon does the same).
      log.debug(`log ${this.path}: ${messageOf(e)}`);
      this.size = fstatSync(this.fd).size;
    }
  }

  private rotate(): void {
    try {
      renameSync(this.path, rotatedLog(this.path));
    } catch (e) {
      log.warn(`log rotation of ${this.path}: ${messageOf(e)}`);
      return;
    }
    // Open first: a writer whose new file cannot be opened keeps its fd (now ctr.log.1), never a closed one.
    let fd: number;
    try {
      fd = openPrivateAppend(this.path);
    } catch (e) {
      log.warn(`log rotation of ${this.path}: ${messageOf(e)}`);
      return;
    }
    closeSync(this.fd);
    this.fd = fd;
    this.size = 0;
    this.openLines.clear();
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** What a file may hold past its half to end an open line: one record of MAX_RECORD_TEXT and its header. */
const LINE_END_ALLOWANCE = MAX_RECORD_TEXT + 64;

const writers = new Map<string, LogWriter>();

/** The sandbox's writer, shared while anything copies into it. */
function acquireWriter(path: string): LogWriter {
  let w = writers.get(path);
  if (!w) {
    w = new LogWriter(path, logSizeMax());
    writers.set(path, w);
  }
  w.users++;
  return w;
}

function releaseWriter(w: LogWriter): void {
  if (--w.users > 0) return;
  writers.delete(w.path);
  w.close();
}

/**
 * The copy budget of one stream: spend() returns a promise to wait for when
 * it is overspent. hurry() ends the pacing: the command has exited, and
 * what it left in the pipe (up to 1 MiB, ~20 MiB of log for `yes`) goes
 * into the log at once, so that `wait` and `logs -f` see all of it.
 */
class Pacer {
  private tokens = COPY_RATE;
  private last = performance.now();
  private hurried = false;
  private wake: (() => void) | null = null;

  spend(bytes: number): Promise<void> | undefined {
    if (this.hurried) return undefined;
    const now = performance.now();
    this.tokens = Math.min(COPY_RATE, this.tokens + ((now - this.last) * COPY_RATE) / 1000) - bytes;
    this.last = now;
    if (this.tokens >= 0) return undefined;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, (-this.tokens * 1000) / COPY_RATE);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.wake = null;
    });
  }

  hurry(): void {
    this.hurried = true;
    this.wake?.();
  }
}

/** Stamps and writes a stream's chunks; returns the pace to keep. */
function stamper(writer: LogWriter, stream: LogStream, pacer = new Pacer()): (chunk: Uint8Array) => Promise<void> | undefined {
  return (chunk) => {
    const stamped = stampChunk(chunk, stream, logTime(performance.timeOrigin + performance.now()));
    writer.write(stamped);
    return pacer.spend(stamped.length);
  };
}

interface PipeCopy {
  /** Settles when the pipe's last writer closed and everything is in the log. */
  done: Promise<void>;
  /** Everything written so far is in the log: the copy waits on an empty pipe. */
  caughtUp(): boolean;
}

/** Copies a pipe (read end, O_NONBLOCK) into the log until its last writer closes; closes `fd`. */
function copyPipe(fd: number, stream: LogStream, writer: LogWriter, pacer = new Pacer()): PipeCopy {
  const onChunk = stamper(writer, stream, pacer);
  const reader = Bun.file(fd).stream().getReader();
  let waiting = false;
  let closed = false;
  const done = (async () => {
    try {
      for (;;) {
        // A read still pending has nothing buffered behind it: what the pipe holds is all that is left.
        waiting = true;
        const { value, done } = await reader.read();
        waiting = false;
        if (done) return;
        const pace = onChunk(value);
        if (pace) await pace;
      }
    } catch (e) {
      log.debug(`log copy of ${stream}: ${messageOf(e)}`);
    } finally {
      closed = true;
      closeSync(fd);
      releaseWriter(writer);
    }
  })();
  return { done, caughtUp: () => closed || (waiting && bytesReadable(fd) === 0) };
}

/** How long a -t command's exit waits for the rest of its terminal output. */
const PTY_DRAIN_MS = 500;
/** How often an exit looks whether the copies have caught up. */
const CATCH_UP_POLL_MS = 10;

const STREAMS = ["stdout", "stderr"] as const;
/** The command's fd of each stream. */
const STREAM_FD = { stdout: 1, stderr: 2 } as const;

export interface DetachedOutput {
  /** stdin, stdout, stderr for the command. */
  stdio: [number | "ignore", number, number];
  /** The pipes' inodes, for the row (a new daemon checks them before it reads): only for pipes. */
  pipes?: { stdout: number; stderr: number };
  /** After the spawn: closes the daemon's copies of the command's ends and starts copying. */
  spawned(): void;
  /** The spawn failed: closes everything. */
  abort(): void;
  /** The command exited: copies what is left without pacing; settles when all it wrote is in the log. */
  drain(): Promise<void>;
}

/** Where `run -d` output goes: see the top of this file. */
export function detachedOutput(logPath: string, tty: boolean): DetachedOutput {
  if (tty) {
    const stamped = isStampedLog(logPath);
    const writer = stamped ? acquireWriter(logPath) : null;
    const rawFd = writer ? null : openPrivateAppend(logPath);
    const onChunk = (chunk: Uint8Array) => void writeSync(rawFd!, chunk);
    const close = () => (writer ? releaseWriter(writer) : closeSync(rawFd!));
    const pacer = new Pacer();
    const paced = writer ? stamper(writer, "stdout", pacer) : onChunk;
    let pty: ReturnType<typeof ptyToLog>;
    try {
      pty = ptyToLog(paced, close);
    } catch (e) {
      close();
      throw e;
    }
    return {
      stdio: [pty.slave, pty.slave, pty.slave],
      spawned: pty.spawned,
      abort: pty.abort,
      drain() {
        pacer.hurry();
        // A pty's end (EIO) waits for every holder of its slave, which a process the command left behind may be.
        return Promise.race([pty.done, Bun.sleep(PTY_DRAIN_MS)]);
      },
    };
  }
  if (!isStampedLog(logPath)) {
    // A row of an older burrow: the command writes straight into its plain log.
    const fd = openPrivateAppend(logPath);
    return { stdio: ["ignore", fd, fd], spawned: () => closeSync(fd), abort: () => closeSync(fd), drain: () => Promise.resolve() };
  }
  // The log first: one that cannot be opened (a planted link) fails before any pipe exists.
  const writer = acquireWriter(logPath);
  const opened: number[] = [];
  try {
    const ends = STREAMS.map((stream) => {
      const [read, write] = pipe();
      opened.push(read);
      // The command's end: the same pipe opened for reading and writing, blocking.
      let command: number;
      try {
        command = openSync(`/proc/self/fd/${read}`, constants.O_RDWR);
      } finally {
        closeSync(write);
      }
      opened.push(command);
      setPipeSize(command, PIPE_SIZE);
      return { stream, read, command, ino: fstatSync(read).ino };
    });
    const [out, err] = ends as [(typeof ends)[0], (typeof ends)[0]];
    const pacers = ends.map(() => new Pacer());
    let copies: PipeCopy[] | null = null;
    return {
      stdio: ["ignore", out.command, err.command],
      pipes: { stdout: out.ino, stderr: err.ino },
      spawned() {
        copies = ends.map((e, i) => {
          closeSync(e.command);
          writer.users++;
          return copyPipe(e.read, e.stream, writer, pacers[i]);
        });
        releaseWriter(writer);
      },
      abort() {
        // After spawned() the copies own the pipes: they end with the command.
        if (copies) return;
        for (const fd of opened) closeSync(fd);
        releaseWriter(writer);
      },
      async drain() {
        for (const p of pacers) p.hurry();
        // Not the pipes' end: a process the command left behind may hold them open until the release kills it.
        while (!(copies ?? []).every((c) => c.caughtUp())) await Bun.sleep(CATCH_UP_POLL_MS);
      },
    };
  } catch (e) {
    for (const fd of opened) closeSync(fd);
    releaseWriter(writer);
    throw e;
  }
}

/**
 * A new daemon goes on copying a running sandbox's output, which waited in
 * its pipes while no daemon read them: opened again through the command's
 * /proc/PID/fd/1 and 2 when those are still the recorded pipes. Nothing to
 * do for a plain log (the command writes it itself) or a `-t` one (its pty
 * hung up with the daemon that held it). A command that moved its stdout
 * elsewhere while a child of it still writes to the pipe is not found: that
 * child waits once the pipe is full (docs/decisions.md).
 */
export function reattachLog(
  s: { pid: number | null; spec: { tty?: boolean }; runtime: { logPipes?: { stdout: number; stderr: number } } },
  logPath: string,
): void {
  const pipes = s.runtime.logPipes;
  // Already copying (this daemon started it).
  if (s.spec.tty || !pipes || !s.pid || !isStampedLog(logPath) || writers.has(logPath)) return;
  for (const stream of STREAMS) {
    let fd: number;
    try {
      fd = openSync(`/proc/${s.pid}/fd/${STREAM_FD[stream]}`, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      log.warn(`log of ${logPath}: ${stream}: ${messageOf(e)}`);
      continue;
    }
    const st = fstatSync(fd);
    if (!st.isFIFO() || st.ino !== pipes[stream]) {
      closeSync(fd);
      log.warn(`log of ${logPath}: the command's ${stream} is not its log pipe any more`);
      continue;
    }
    let writer: LogWriter;
    try {
      writer = acquireWriter(logPath);
    } catch (e) {
      // One sandbox's log that cannot be opened (gone, a planted link) loses its output, not the daemon's start.
      closeSync(fd);
      log.warn(`log of ${logPath}: ${messageOf(e)}`);
      continue;
    }
    copyPipe(fd, stream, writer);
  }
}
