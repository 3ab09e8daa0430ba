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

export function postUnix(sock: string, path: string, body: string, opts: PostOptions = {}): Promise<UnixReply> {
  const { signal, connect = connectUnix } = opts;
  let onSent = opts.onSent;
  return new Promise<UnixReply>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const payload = Buffer.from(body, "utf8");
    let pending: Buffer = Buffer.concat([
      Buffer.from(`POST ${path} HTTP/1.1\r\nHost: burrow\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`),
      payload,
    ]);
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

/** Status and body of a whole HTTP/1.1 response. */
export function parseReply(raw: Buffer): UnixReply {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) throw new MalformedReply(raw.length ? "the reply has no end of headers" : "the connection closed without a reply");
  const lines = raw.subarray(0, end).toString("latin1").split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? "");
  if (!status) throw new MalformedReply(`the reply's status line is not HTTP: ${JSON.stringify((lines[0] ?? "").slice(0, 40))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = raw.subarray(end + 4);
  if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) body = unchunk(body);
  else if (headers.has("content-length")) {
    const length = Number(headers.get("content-length"));
    if (!Number.isSafeInteger(length) || length < 0 || length > body.length) throw new MalformedReply("the reply is shorter than its Content-Length");
    body = body.subarray(0, length);
  }
  return { status: Number(status[1]), text: body.toString("utf8") };
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
