// `burrow logs`: reading a sandbox's log (CLI process, host namespaces). The
// daemon names the file; the CLI opens it itself, checked like every file
// it opens by name (openPrivateLog), and prints stdout lines to stdout and
// stderr lines to stderr, as `podman logs` does.
import { closeSync, fstatSync, readSync, statSync } from "node:fs";
import { BurrowError } from "../errors.ts";
import { isStampedLog, LineJoiner, type LogLine, parseRecord, rotatedLog, splitLines } from "../sandbox-log.ts";
import { openPrivateLog } from "./trust.ts";

export interface LogOptions {
  /** The last N lines only (after --since/--until); undefined: all. */
  tail?: number;
  /** Milliseconds since the epoch; lines before/after are left out. */
  since?: number;
  until?: number;
  timestamps: boolean;
  /** Keep printing new output until this settles (the sandbox ended). */
  follow?: Promise<unknown>;
}

/** How often `logs -f` looks for new output. */
const FOLLOW_POLL_MS = 100;
const CHUNK = 1024 * 1024;
const encoder = new TextEncoder();

/** Writes to stdout/stderr, waiting when a pipe or a non-blocking terminal is full (Bun.write's sendfile stopped at 64 KiB with EAGAIN). */
async function out(stream: "stdout" | "stderr", data: Uint8Array): Promise<void> {
  const target = stream === "stdout" ? process.stdout : process.stderr;
  if (!target.write(data)) await new Promise((resolve) => target.once("drain", resolve));
}

/** Lines gathered into one write per stream run (a million `y` lines were a million writes). */
class Output {
  private parts: Uint8Array[] = [];
  private size = 0;
  private stream: "stdout" | "stderr" = "stdout";

  async add(stream: "stdout" | "stderr", data: Uint8Array): Promise<void> {
    if (stream !== this.stream || this.size >= FLUSH_AT) await this.flush();
    this.stream = stream;
    this.parts.push(data);
    this.size += data.length;
  }

  async flush(): Promise<void> {
    if (!this.parts.length) return;
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.size = 0;
    await out(this.stream, data);
  }
}

const FLUSH_AT = 256 * 1024;

/** Reads what `fd` has from `offset` on; returns the bytes and the new offset. */
function readFrom(fd: number, offset: number): { bytes: Uint8Array; offset: number } {
  const parts: Uint8Array[] = [];
  let at = offset;
  // Sized by what is there: an idle `-f` poll (every 100 ms) allocates nothing.
  for (let left = fstatSync(fd).size - at; left > 0; ) {
    const buf = new Uint8Array(Math.min(left, CHUNK));
    const n = readSync(fd, buf, 0, buf.length, at);
    if (n <= 0) break;
    parts.push(buf.subarray(0, n));
    at += n;
    left -= n;
  }
  return { bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts), offset: at };
}

/** A log file followed across rotations: ctr.log becomes ctr.log.1 and a new ctr.log starts. */
class LogCursor {
  private rest: Uint8Array = new Uint8Array(0);

  private constructor(
    private readonly path: string,
    private fd: number | null,
    private offset: number,
  ) {}

  static open(path: string): LogCursor {
    return new LogCursor(path, openPrivateLog(path), 0);
  }

  /** The complete lines (file lines, without their newline) written since the last call. */
  next(): Uint8Array[] {
    const lines: Uint8Array[] = [];
    for (;;) {
      if (this.fd === null) {
        this.fd = openPrivateLog(this.path);
        this.offset = 0;
        if (this.fd === null) return lines;
      }
      const got = readFrom(this.fd, this.offset);
      this.offset = got.offset;
      const joined = this.rest.length ? Buffer.concat([this.rest, got.bytes]) : got.bytes;
      const split = splitLines(joined);
      lines.push(...split.lines);
      this.rest = split.rest;
      // Rotated under us: this file is complete; go on with the new one.
      if (this.replaced()) {
        closeSync(this.fd);
        this.fd = null;
        this.rest = new Uint8Array(0);
        continue;
      }
      return lines;
    }
  }

  /** The unfinished last line (a plain log whose command ended mid-line). */
  takeRest(): Uint8Array {
    const r = this.rest;
    this.rest = new Uint8Array(0);
    return r;
  }

  private replaced(): boolean {
    if (this.fd === null) return false;
    try {
      return statSync(this.path).ino !== fstatSync(this.fd).ino;
    } catch {
      return false; // gone (rm): nothing newer to read
    }
  }

  ino(): number | null {
    return this.fd === null ? null : fstatSync(this.fd).ino;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** The rotated older half, unless it is the file the cursor already has (a rotation between the two opens). */
function readRotated(path: string, current: LogCursor): Uint8Array[] {
  const fd = openPrivateLog(rotatedLog(path));
  if (fd === null) return [];
  try {
    if (fstatSync(fd).ino === current.ino()) return [];
    return splitLines(readFrom(fd, 0).bytes).lines;
  } finally {
    closeSync(fd);
  }
}

/** Prints a sandbox's log with podman's `logs` options. */
export async function printLog(path: string, opts: LogOptions): Promise<void> {
  const stamped = isStampedLog(path);
  if (!stamped && (opts.timestamps || opts.since !== undefined || opts.until !== undefined)) {
    throw new BurrowError(
      `this sandbox's log was written by an older burrow, without times: --timestamps, --since and --until need a sandbox made by this version (--tail and --follow work)`,
      { kind: "bad-input" },
    );
  }
  // The current file first, then the rotated one: a rotation in between shows as the same file.
  const cursor = LogCursor.open(path);
  const output = new Output();
  try {
    const first = [...(stamped ? readRotated(path, cursor) : []), ...cursor.next()];
    const joiner = new LineJoiner();
    const lines = stamped ? toLines(first, joiner, opts) : first.map(plainLine);
    // Without -f the log is complete: an unfinished last line counts for --tail.
    if (!opts.follow) lines.push(...unfinished(cursor, joiner, stamped, opts));
    const shown = opts.tail === undefined ? lines : opts.tail === 0 ? [] : lines.slice(-opts.tail);
    for (const line of shown) await print(output, line, opts);
    await output.flush();
    if (!opts.follow) return;
    let ended = false;
    void opts.follow.then(
      () => (ended = true),
      () => (ended = true),
    );
    for (;;) {
      // Read once more after the end: what the command wrote last.
      const last = ended;
      const more = cursor.next();
      for (const line of stamped ? toLines(more, joiner, opts) : more.map(plainLine)) await print(output, line, opts);
      await output.flush();
      if (last || (opts.until !== undefined && Date.now() > opts.until)) break;
      await Promise.race([Bun.sleep(FOLLOW_POLL_MS), opts.follow.catch(() => {})]);
    }
    for (const line of unfinished(cursor, joiner, stamped, opts)) await print(output, line, opts);
    await output.flush();
  } finally {
    cursor.close();
  }
}

/** What has no newline yet: a command that ended mid-line. */
function unfinished(cursor: LogCursor, joiner: LineJoiner, stamped: boolean, opts: LogOptions): LogLine[] {
  if (stamped) return joiner.flush().filter((line) => inWindow(line, opts));
  const rest = cursor.takeRest();
  return rest.length ? [{ time: "", ms: 0, stream: "stdout", text: rest }] : [];
}

function toLines(fileLines: Uint8Array[], joiner: LineJoiner, opts: LogOptions): LogLine[] {
  const lines: LogLine[] = [];
  for (const fileLine of fileLines) {
    const record = parseRecord(fileLine);
    if (!record) continue; // torn by a crash mid-write: skip it, as podman does a bad line
    const line = joiner.push(record);
    if (line && inWindow(line, opts)) lines.push(line);
  }
  return lines;
}

function inWindow(line: LogLine, opts: LogOptions): boolean {
  return (opts.since === undefined || line.ms >= opts.since) && (opts.until === undefined || line.ms <= opts.until);
}

const NEWLINE = new Uint8Array([10]);

function plainLine(text: Uint8Array): LogLine {
  return { time: "", ms: 0, stream: "stdout", text: Buffer.concat([text, NEWLINE]) };
}

function print(output: Output, line: LogLine, opts: LogOptions): Promise<void> {
  return output.add(line.stream, opts.timestamps ? Buffer.concat([encoder.encode(`${line.time} `), line.text]) : line.text);
}
