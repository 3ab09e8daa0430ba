// Requests are parsed or refused (issue 10 item 4): the route must be one of
// the protocol's own ops (never an inherited property such as __proto__ or
// constructor), the body at most 1 MiB of JSON that matches the op's schema.
// Anything else is answered 400/404/413 before a handler runs, so a refused
// request changes nothing. Error messages quote at most a short prefix of
// what the client sent.
import * as v from "valibot";
import { BurrowError } from "../errors.ts";
import { Ops, formatIssues, type Op } from "../protocol.ts";
import { quote } from "../quote.ts";

export const MAX_BODY_BYTES = 1 << 20;

/**
 * An error message as it leaves the daemon: every quoted value cut to a
 * short prefix (a handler may quote a 100 KB name in full), one line, and
 * at most 1000 characters in all.
 */
export function shortMessage(message: string): string {
  const short = message.replace(/"((?:[^"\\]|\\.){60})(?:[^"\\]|\\.)+"/g, '"$1…"').replace(/[\r\n]+/g, " ");
  return short.length > 1000 ? `${short.slice(0, 1000)}…` : short;
}

export class RequestRefused extends BurrowError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message, { kind: status === 404 ? "not-found" : "protocol" });
    this.status = status;
  }
}

/** The op a path names, or a 404 (own properties of Ops only). */
export function routeOf(pathname: string): Op {
  const op = pathname.startsWith("/") ? pathname.slice(1) : pathname;
  if (!Object.hasOwn(Ops, op)) throw new RequestRefused(404, `unknown operation ${quote(op)}`);
  return op as Op;
}

/** Reads at most MAX_BODY_BYTES, refusing (413) as soon as more arrive. */
export async function readBody(req: Request): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw new RequestRefused(413, `request body of ${declared} bytes is larger than the limit of ${MAX_BODY_BYTES}`);
  if (!req.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw new RequestRefused(413, `request body is larger than the limit of ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The validated arguments of `op` from a body: JSON matching the op's schema (the CLI always sends one). */
export function parseArgs(op: Op, text: string): unknown {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new RequestRefused(400, `invalid request: the body of ${op} is not JSON (starts with ${quote(text)})`);
  }
  const parsed = v.safeParse(Ops[op], body);
  if (!parsed.success) throw new RequestRefused(400, `invalid request: ${shortIssues(parsed.issues)}`);
  return parsed.output;
}

/** formatIssues, with every line cut short: an issue may quote the input. */
function shortIssues(issues: v.BaseIssue<unknown>[]): string {
  const lines = formatIssues(issues.slice(0, 5))
    .split("; ")
    .map((l) => (l.length > 160 ? `${l.slice(0, 160)}…` : l));
  return lines.join("; ").replace(/[\r\n]+/g, " ");
}
