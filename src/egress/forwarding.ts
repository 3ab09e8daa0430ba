// What burrow's per-sandbox resolver (src/egress/worker.ts) sends upstream
// and keeps of the answers (docs/egress.md "The resolver"). Pure: the worker
// does the sockets and the clock is passed in.
import { canonicalName } from "./names.ts";
import { type DnsMessage, RCODE, TYPE, UDP_EDNS_MAX } from "./dns-message.ts";
import { MAX_LEARNED_SECONDS } from "./learned.ts";

/**
 * The query burrow sends upstream for one from a sandbox: its one question,
 * recursion desired, a fresh `id` (the sandbox's own is never sent on, so it
 * cannot be used to guess ours), and burrow's own EDNS record offering
 * UDP_EDNS_MAX bytes. Nothing else of the sandbox's message goes out.
 */
export function upstreamQuery(query: DnsMessage, id: number): DnsMessage {
  return {
    header: { id, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0 },
    questions: query.questions.slice(0, 1),
    answers: [],
    authorities: [],
    additionals: [{ name: ".", type: TYPE.OPT, class: UDP_EDNS_MAX, ttl: 0, data: { kind: "raw", bytes: new Uint8Array() } }],
  };
}

/** Whether `m` answers the query burrow sent with `id` for `query`'s question: a response, the same ID, the same question. */
export function answersQuery(m: DnsMessage, id: number, query: DnsMessage): boolean {
  const q = query.questions[0];
  const a = m.questions[0];
  return (
    m.header.qr &&
    m.header.id === id &&
    m.questions.length === 1 &&
    !!q &&
    !!a &&
    a.type === q.type &&
    a.class === q.class &&
    canonicalName(a.name) === canonicalName(q.name)
  );
}

/** Entries the shared cache holds at most (over every sandbox). */
export const CACHE_ENTRIES = 4096;

/** The cache's key: which servers were asked (as a set), the name and the type. */
export function cacheKey(upstreams: readonly string[], name: string, type: number): string {
  return JSON.stringify([[...upstreams].sort(), canonicalName(name), type]);
}

/**
 * Upstream answers, shared by every sandbox, each kept for its records'
 * smallest TTL (never longer than a learned address lives). A hit is the
 * answer as upstream gave it, TTLs included: lowered by its age they would
 * tell one sandbox when another asked for the name (the cache is shared);
 * the entry's own expiry only decides when it is dropped. Every sandbox
 * still makes its own decision on it (resolver-policy.ts's
 * decideAnswer) and learns its addresses again. Only positive answers are
 * kept: a name's absence is asked again. Least recently used goes first.
 */
export class AnswerCache {
  readonly #entries = new Map<string, { message: DnsMessage; expiresAt: number }>();
  constructor(readonly maxEntries = CACHE_ENTRIES) {}

  get size(): number {
    return this.#entries.size;
  }

  /** The answer kept under `key` at `now` (ms), or null. */
  get(key: string, now: number): DnsMessage | null {
    const entry = this.#entries.get(key);
    if (!entry) return null;
    this.#entries.delete(key);
    if (entry.expiresAt <= now) return null;
    this.#entries.set(key, entry);
    return entry.message;
  }

  /** Keeps upstream's answer `m` (a whole, positive one with a TTL) under `key` from `now` (ms). */
  put(key: string, m: DnsMessage, now: number): void {
    if (m.header.tc || m.header.rcode !== RCODE.NOERROR || m.answers.length === 0) return;
    const ttl = Math.min(MAX_LEARNED_SECONDS, ...m.answers.map((r) => r.ttl));
    if (ttl <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { message: { ...m, authorities: [], additionals: [] }, expiresAt: now + ttl * 1000 });
    while (this.#entries.size > this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }
}

/** DNS over TCP (RFC 1035 4.2.2, RFC 7766): each message behind its 2-byte length. */
export function framed(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.length + 2);
  out[0] = message.length >> 8;
  out[1] = message.length & 0xff;
  out.set(message, 2);
  return out;
}

/**
 * Splits a TCP byte stream into messages; several may come in one read, one
 * may come in several. Each byte is copied once, into a buffer of the length
 * the message announced: a client sending a 64 KiB message a byte at a time
 * costs 64 KiB of copying, not the whole held part again per byte.
 */
export class TcpFrames {
  /** The length prefix read so far (a segment may split it). */
  readonly #prefix = new Uint8Array(2);
  #prefixHave = 0;
  /** The message being filled, sized by its prefix; null between messages. */
  #message: Uint8Array | null = null;
  #have = 0;

  /** Bytes as read; the whole messages they complete. */
  push(bytes: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < bytes.length) {
      if (!this.#message) {
        this.#prefix[this.#prefixHave++] = bytes[at++]!;
        if (this.#prefixHave < 2) continue;
        this.#prefixHave = 0;
        this.#message = new Uint8Array((this.#prefix[0]! << 8) | this.#prefix[1]!);
        this.#have = 0;
      }
      const n = Math.min(this.#message.length - this.#have, bytes.length - at);
      this.#message.set(bytes.subarray(at, at + n), this.#have);
      this.#have += n;
      at += n;
      if (this.#have === this.#message.length) {
        out.push(this.#message);
        this.#message = null;
      }
    }
    // A zero-length message whose prefix ended the read.
    if (this.#message?.length === 0) {
      out.push(this.#message);
      this.#message = null;
    }
    return out;
  }

  /** Bytes of an incomplete message held (its prefix included). */
  get pending(): number {
    return this.#message ? 2 + this.#have : this.#prefixHave;
  }
}
