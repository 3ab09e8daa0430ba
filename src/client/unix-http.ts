// One HTTP/1.1 POST over the control socket, on Bun.connect instead of
// fetch: fetch starts Bun's HTTP client thread on its first use, which cost
// every CLI start 1-3 ms before its first request could go out (issue 17
// item 2, docs/decisions.md "A CLI that starts fast"). One request per
// connection (Connection: close): the reply is read until the daemon closes
// it, then its body is taken by Content-Length or chunked encoding.
//
// The connection is made by hand (the caller's `connect`: the CLI checks
// the listener on it) and the request written into it at once; Bun takes
// the fd for what the socket could not take yet and for the reply
// (docs/decisions.md "One connection to the daemon, checked and written at once").
import type { Socket } from "bun";
import { close } from "../sys/ns.ts";
import { connectUnix, sendSome } from "../sys/unix-stream.ts";

export interface UnixReply {
  status: number;
  text: string;
}

/** The reply could not be read as HTTP (a listener that is not a burrow daemon, a connection cut short). */
export class MalformedReply extends Error {}

export interface PostOptions {
  signal?: AbortSignal;
  /**
   * Runs once the whole request is in the socket (the daemon can start on
   * it): what the caller does then cannot hold the request back.
   */
  onSent?: () => void;
  /** Makes the connection to `sock` (default: connectUnix); what it throws is the call's error. */
  connect?: (sock: string) => number;
}

/** The bytes of one POST of a JSON `body` to `path`, closing the connection after its answer. */
export function requestBytes(path: string, body: string): Buffer {
  const payload = Buffer.from(body, "utf8");
  return Buffer.concat([
    Buffer.from(`POST ${path} HTTP/1.1\r\nHost: burrow\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`),
    payload,
  ]);
}

/**
 * Writes one POST into a connection made by `connect` and closes it without
 * reading the answer: true when the whole request went into the socket (the
 * listener reads it even once this end has closed). A request the socket
 * could not take at once is not sent at all (false).
 */
export function sendUnix(sock: string, path: string, body: string, connect: (sock: string) => number = connectUnix): boolean {
  const bytes = requestBytes(path, body);
  const fd = connect(sock);
  try {
    return sendSome(fd, bytes) === bytes.length;
  } finally {
    close(fd);
  }
}

export function postUnix(sock: string, path: string, body: string, opts: PostOptions = {}): Promise<UnixReply> {
  const { signal, connect = connectUnix } = opts;
  let onSent = opts.onSent;
  return new Promise<UnixReply>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let pending: Buffer = requestBytes(path, body);
    let fd: number;
    try {
      fd = connect(sock);
    } catch (e) {
      reject(e);
      return;
    }
    try {
      // Written now, not once Bun's socket is open (a turn of its event loop later).
      pending = pending.subarray(sendSome(fd, pending));
    } catch (e) {
      // The daemon went away (EPIPE): the connection is not handed to Bun, so it is closed here.
      close(fd);
      reject(e);
      return;
    }
    const chunks: Buffer[] = [];
    let socket: Socket<undefined> | undefined;
    let done = false;
    const finish = (err: unknown, reply?: UnixReply) => {
      if (done) return;
      done = true;
      signal?.removeEventListener("abort", onAbort);
      if (err !== undefined) {
        socket?.terminate();
        reject(err);
      } else resolve(reply!);
    };
    const onAbort = () => finish(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const sentAll = () => {
      if (pending.length || !onSent) return;
      const sent = onSent;
      onSent = undefined;
      sent();
    };
    const flush = (s: Socket<undefined>) => {
      // A short write leaves the rest for the drain event.
      const n = pending.length ? s.write(pending) : 0;
      if (n > 0) pending = pending.subarray(n);
      sentAll();
    };
    Bun.connect({
      fd,
      socket: {
        open(s) {
          socket = s;
          if (done) s.terminate();
          else flush(s);
        },
        drain(s) {
          if (pending.length) flush(s);
        },
        data(_s, d) {
          chunks.push(Buffer.from(d));
        },
        close() {
          try {
            finish(undefined, parseReply(Buffer.concat(chunks)));
          } catch (e) {
            finish(e);
          }
        },
        error(_s, e) {
          finish(e);
        },
        connectError(_s, e) {
          finish(e);
        },
      },
    }).catch((e) => finish(e));
    sentAll();
  });
}

/**
 * Status and body of a whole HTTP/1.1 response. Read with indexOf and
 * character codes, no regular expression: each one compiled on its first
 * use, ~0.1 ms of every CLI's first reply (issue 17).
 */
export function parseReply(raw: Buffer): UnixReply {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) throw new MalformedReply(raw.length ? "the reply has no end of headers" : "the connection closed without a reply");
  const head = raw.toString("latin1", 0, end);
  const eol = head.indexOf("\r\n");
  const first = eol < 0 ? head : head.slice(0, eol);
  const status = statusOf(first);
  if (status === null) throw new MalformedReply(`the reply's status line is not HTTP: ${JSON.stringify(first.slice(0, 40))}`);
  let length: string | undefined;
  let chunked = false;
  for (let at = eol < 0 ? head.length : eol + 2; at < head.length; ) {
    let next = head.indexOf("\r\n", at);
    if (next < 0) next = head.length;
    const colon = head.indexOf(":", at);
    if (colon > at && colon < next) {
      const name = head.slice(at, colon).trim().toLowerCase();
      const value = head.slice(colon + 1, next).trim();
      if (name === "content-length") length = value;
      else if (name === "transfer-encoding")
        chunked = value
          .toLowerCase()
          .split(",")
          .some((coding) => coding.trim() === "chunked");
    }
    at = next + 2;
  }
  let body = raw.subarray(end + 4);
  if (chunked) body = unchunk(body);
  else if (length !== undefined) {
    const n = Number(length);
    if (!Number.isSafeInteger(n) || n < 0 || n > body.length) throw new MalformedReply("the reply is shorter than its Content-Length");
    body = body.subarray(0, n);
  }
  return { status, text: body.toString("utf8") };
}

/** The code of a status line "HTTP/1.x NNN[ reason]", or null. */
function statusOf(line: string): number | null {
  if (!line.startsWith("HTTP/1.") || (line[7] !== "0" && line[7] !== "1") || line[8] !== " ") return null;
  if (line.length > 12 && line[12] !== " ") return null;
  let code = 0;
  for (let i = 9; i < 12; i++) {
    const d = line.charCodeAt(i) - 48;
    if (!(d >= 0 && d <= 9)) return null;
    code = code * 10 + d;
  }
  return code;
}

function unchunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    if (eol < 0) throw new MalformedReply("a chunk of the reply is cut short");
    const size = Number.parseInt(body.subarray(at, eol).toString("latin1").split(";")[0]!.trim(), 16);
    if (!Number.isSafeInteger(size) || size < 0 || eol + 2 + size > body.length) throw new MalformedReply("a chunk of the reply is cut short");
    if (size === 0) return Buffer.concat(parts);
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}
