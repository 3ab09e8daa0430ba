// A detached sandbox's log, in podman's k8s-file format: one record a line,
//   2026-12-04T15:27:08.123456789Z stdout F text
// (time, stream, F for a full line or P for a part of one whose rest follows
// in the next record, then the text without its newline). The daemon writes
// it (src/daemon/log-copy.ts), `burrow logs` reads it (src/client/logs.ts).
// Pure: no I/O here.
//
// The file is `ctr.log` (podman's name for it) and, after a rotation, the
// older half in `ctr.log.1`. Sandboxes made by earlier builds have a
// plain `log` file their command wrote straight into: no times, no streams.

export const LOG_FILE = "ctr.log";
/** The older half, kept after a rotation: `ctr.log.1`. */
export const rotatedLog = (path: string): string => `${path}.1`;
/** Whether a log path names a k8s-file log (this version) rather than a plain file (older ones). */
export const isStampedLog = (path: string): boolean => path.endsWith(`/${LOG_FILE}`);

export type LogStream = "stdout" | "stderr";

export interface LogRecord {
  /** As written: RFC 3339 with nine fractional digits, UTC. */
  time: string;
  /** Milliseconds since the epoch (for --since/--until). */
  ms: number;
  stream: LogStream;
  /** A part of a line: the next record of the same stream goes on without a newline. */
  partial: boolean;
  text: Uint8Array;
}

const NL = 10;
const SPACE = 32;
const encoder = new TextEncoder();
const NEWLINE = new Uint8Array([NL]);

/**
 * `ms` (fractional, from performance.timeOrigin + now) as RFC 3339 with nine
 * fractional digits, UTC. A double holds a wall-clock time to about a
 * quarter of a microsecond, so the last three digits are always 0.
 */
export function logTime(ms: number): string {
  let whole = Math.floor(ms);
  let micros = Math.round((ms - whole) * 1000);
  if (micros === 1000) {
    whole++;
    micros = 0;
  }
  const iso = new Date(whole).toISOString(); // 2026-12-04T15:27:08.123Z
  return `${iso.slice(0, 23)}${micros.toString().padStart(3, "0")}000Z`;
}

/** The longest text of one record; a longer line becomes P records (conmon reads 8 KiB at a time, so its records are as long). */
export const MAX_RECORD_TEXT = 8192;

/**
 * Turns a chunk of a stream's output into records, all stamped `time` (the
 * chunk arrived at once). A chunk not ending in a newline ends in a P record.
 */
export function stampChunk(chunk: Uint8Array, stream: LogStream, time: string): Uint8Array {
  const full = encoder.encode(`${time} ${stream} F `);
  const part = encoder.encode(`${time} ${stream} P `);
  const pieces: Uint8Array[] = [];
  let size = 0;
  let start = 0;
  while (start < chunk.length) {
    const nl = chunk.indexOf(NL, start);
    const lineEnd = nl === -1 ? chunk.length : nl + 1;
    const end = Math.min(lineEnd, start + MAX_RECORD_TEXT);
    const whole = end === nl + 1;
    pieces.push(whole ? full : part, chunk.subarray(start, end));
    size += full.length + end - start;
    if (!whole) {
      pieces.push(NEWLINE);
      size++;
    }
    start = end;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const decoder = new TextDecoder();
let lastTime = { time: "", ms: Number.NaN };
const STDOUT = encoder.encode("stdout");
const STDERR = encoder.encode("stderr");

function streamAt(line: Uint8Array, at: number): LogStream | null {
  const is = (name: Uint8Array) => name.every((c, i) => line[at + i] === c);
  return is(STDOUT) ? "stdout" : is(STDERR) ? "stderr" : null;
}

/** Parses one record (without its newline); null when the line is not one (a torn write, another format). */
export function parseRecord(line: Uint8Array): LogRecord | null {
  const a = line.indexOf(SPACE);
  if (a < 20) return null;
  const b = line.indexOf(SPACE, a + 1);
  if (b === -1 || b + 2 > line.length) return null;
  const stream = b - a === 7 ? streamAt(line, a + 1) : null;
  if (!stream) return null;
  const flag = line[b + 1];
  if (flag !== 70 && flag !== 80) return null; // F, P
  const time = decoder.decode(line.subarray(0, a));
  // The records of one chunk share their time: parse it once.
  if (time !== lastTime.time) lastTime = { time, ms: Date.parse(time) };
  const ms = lastTime.ms;
  if (Number.isNaN(ms)) return null;
  // The separator after the flag is absent for an empty text at the end of the line.
  const text = line.subarray(Math.min(b + 3, line.length));
  return { time, ms, stream, partial: flag === 80, text };
}

/** A whole line of output: the records of one stream from P...P to the F that ends it. */
export interface LogLine {
  time: string;
  ms: number;
  stream: LogStream;
  /** The text with its newline (none on the last line of a stream that ended mid-line). */
  text: Uint8Array;
}

/**
 * Joins records into lines, per stream (a P record of stdout waits for the
 * next stdout record, whatever stderr wrote between). A line takes the
 * time of its first part, as podman's reader does.
 */
export class LineJoiner {
  private readonly open = new Map<LogStream, { time: string; ms: number; parts: Uint8Array[] }>();

  push(r: LogRecord): LogLine | null {
    const pending = this.open.get(r.stream);
    if (r.partial) {
      if (pending) pending.parts.push(r.text);
      else this.open.set(r.stream, { time: r.time, ms: r.ms, parts: [r.text] });
      return null;
    }
    this.open.delete(r.stream);
    const parts = pending ? [...pending.parts, r.text, NEWLINE] : [r.text, NEWLINE];
    return { time: pending?.time ?? r.time, ms: pending?.ms ?? r.ms, stream: r.stream, text: concat(parts) };
  }

  /** The unfinished lines (the stream ended without a newline), oldest first. */
  flush(): LogLine[] {
    const out = [...this.open.entries()].map(([stream, p]) => ({ time: p.time, ms: p.ms, stream, text: concat(p.parts) }));
    this.open.clear();
    return out.sort((x, y) => x.ms - y.ms);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** Splits bytes into newline-ended lines; returns the lines and the unfinished rest. */
export function splitLines(buf: Uint8Array): { lines: Uint8Array[]; rest: Uint8Array } {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let nl = buf.indexOf(NL); nl !== -1; nl = buf.indexOf(NL, start)) {
    lines.push(buf.subarray(start, nl));
    start = nl + 1;
  }
  return { lines, rest: buf.subarray(start) };
}

/**
 * The newest whole records of `buf` (stamped records) that fit in `max`
 * bytes: the cut falls at the start of a record.
 */
export function keepNewest(buf: Uint8Array, max: number): Uint8Array {
  if (buf.length <= max) return buf;
  const nl = buf.indexOf(NL, buf.length - max - 1);
  return nl === -1 ? buf.subarray(buf.length) : buf.subarray(nl + 1);
}

/**
 * The length of `buf`'s leading records up to and including the first F
 * record (the end of the line a previous chunk left open), or 0 when there
 * is none. `buf` holds the records of one chunk, so of one stream.
 */
export function lineEndLength(buf: Uint8Array): number {
  for (let start = 0; start < buf.length; ) {
    const nl = buf.indexOf(NL, start);
    if (nl === -1) return 0;
    const r = parseRecord(buf.subarray(start, nl));
    if (r && !r.partial) return nl + 1;
    start = nl + 1;
  }
  return 0;
}

/** The last record of `buf` (newline-ended records), or null. */
export function lastRecord(buf: Uint8Array): LogRecord | null {
  if (buf.length === 0) return null;
  const end = buf[buf.length - 1] === NL ? buf.length - 1 : buf.length;
  return parseRecord(buf.subarray(buf.lastIndexOf(NL, end - 1) + 1, end));
}

/**
 * The oldest whole records of `buf` that fit in `max` bytes (at least one
 * record, even a longer one): how a write is split between rotations.
 */
export function takeOldest(buf: Uint8Array, max: number): Uint8Array {
  if (buf.length <= max) return buf;
  const nl = buf.lastIndexOf(NL, max - 1);
  if (nl !== -1) return buf.subarray(0, nl + 1);
  const first = buf.indexOf(NL);
  return first === -1 ? buf : buf.subarray(0, first + 1);
}
