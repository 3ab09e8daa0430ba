// What the egress resolver sends upstream and keeps (src/egress/forwarding.ts):
// the query that goes out, which answers count, the shared cache, and DNS
// over TCP's framing.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type DnsMessage, encodeMessage, parseMessage, RCODE, type ResourceRecord, TYPE, UDP_EDNS_MAX } from "../../src/egress/dns-message.ts";
import { AnswerCache, answersQuery, cacheKey, framed, TcpFrames, upstreamQuery } from "../../src/egress/forwarding.ts";

const a = (name: string, address: string, ttl = 300): ResourceRecord => ({ name, type: TYPE.A, class: 1, ttl, data: { kind: "address", address } });
const header = { id: 7, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: true, rcode: 0 };
const query = (name: string, type: number = TYPE.A): DnsMessage => ({
  header,
  questions: [{ name, type, class: 1 }],
  answers: [],
  authorities: [],
  // Whatever the sandbox adds (an OPT with its own size, a cookie...) stays home.
  additionals: [{ name: ".", type: TYPE.OPT, class: 65000, ttl: 0, data: { kind: "raw", bytes: Uint8Array.from([0, 10, 0, 1, 9]) } }],
});
const answerOf = (q: DnsMessage, answers: ResourceRecord[], over: Partial<DnsMessage["header"]> = {}): DnsMessage => ({
  header: { ...q.header, qr: true, ra: true, ...over },
  questions: q.questions,
  answers,
  authorities: [],
  additionals: [],
});

describe("the query sent upstream", () => {
  test("the one question with burrow's ID and EDNS size, nothing else of the sandbox's message", () => {
    const out = upstreamQuery(query("Pypi.Org"), 0xbeef);
    expect(out.header).toMatchObject({ id: 0xbeef, qr: false, rd: true, cd: false });
    expect(out.questions).toEqual([{ name: "Pypi.Org", type: TYPE.A, class: 1 }]);
    expect(out.additionals).toEqual([{ name: ".", type: TYPE.OPT, class: UDP_EDNS_MAX, ttl: 0, data: { kind: "raw", bytes: new Uint8Array() } }]);
    expect(parseMessage(encodeMessage(out))).toEqual(out);
  });

  test("an answer counts only with the same ID and question (name case aside), as a response", () => {
    const q = query("pypi.org");
    const sent = upstreamQuery(q, 100);
    expect(answersQuery(answerOf(sent, []), 100, q)).toBe(true);
    expect(answersQuery({ ...answerOf(sent, []), questions: [{ name: "PyPI.org.", type: TYPE.A, class: 1 }] }, 100, q)).toBe(true);
    expect(answersQuery(answerOf(sent, [], { id: 101 }), 100, q)).toBe(false);
    expect(answersQuery(answerOf(sent, [], { qr: false }), 100, q)).toBe(false);
    expect(answersQuery({ ...answerOf(sent, []), questions: [{ name: "evil.org", type: TYPE.A, class: 1 }] }, 100, q)).toBe(false);
    expect(answersQuery({ ...answerOf(sent, []), questions: [{ name: "pypi.org", type: TYPE.AAAA, class: 1 }] }, 100, q)).toBe(false);
    expect(answersQuery({ ...answerOf(sent, []), questions: [] }, 100, q)).toBe(false);
  });
});

describe("the shared answer cache", () => {
  const key = cacheKey(["192.0.2.1"], "pypi.org", TYPE.A);

  test("keyed by the set of servers, the canonical name and the type", () => {
    expect(cacheKey(["192.0.2.2", "192.0.2.1"], "PyPI.org.", TYPE.A)).toBe(cacheKey(["192.0.2.1", "192.0.2.2"], "pypi.org", TYPE.A));
    expect(cacheKey(["192.0.2.1"], "pypi.org", TYPE.AAAA)).not.toBe(key);
    expect(cacheKey(["192.0.2.3"], "pypi.org", TYPE.A)).not.toBe(key);
  });

  test("an answer is kept for its smallest TTL", () => {
    const cache = new AnswerCache();
    const m = answerOf(query("pypi.org"), [a("pypi.org", "198.51.100.1", 300), a("pypi.org", "198.51.100.2", 60)]);
    cache.put(key, m, 1_000);
    expect(cache.get(key, 1_000)!.answers.map((r) => r.ttl)).toEqual([300, 60]);
    expect(cache.get(key, 60_999)).not.toBeNull();
    expect(cache.get(key, 61_000)).toBeNull();
    expect(cache.size).toBe(0);
  });

  test("a hit carries upstream's TTLs whatever its age: a sandbox cannot tell when another asked for the name", () => {
    const cache = new AnswerCache();
    cache.put(key, answerOf(query("pypi.org"), [a("pypi.org", "198.51.100.1", 300), a("pypi.org", "198.51.100.2", 60)]), 1_000);
    expect(cache.get(key, 11_500)!.answers.map((r) => r.ttl)).toEqual([300, 60]);
    expect(cache.get(key, 60_500)!.answers.map((r) => r.ttl)).toEqual([300, 60]);
  });

  test("not kept: negative, failed, truncated, empty or TTL 0 answers", () => {
    const cache = new AnswerCache();
    const q = query("pypi.org");
    cache.put(key, answerOf(q, [], { rcode: RCODE.NXDOMAIN }), 0);
    cache.put(key, answerOf(q, [a("pypi.org", "198.51.100.1")], { rcode: RCODE.SERVFAIL }), 0);
    cache.put(key, answerOf(q, [a("pypi.org", "198.51.100.1")], { tc: true }), 0);
    cache.put(key, answerOf(q, []), 0);
    cache.put(key, answerOf(q, [a("pypi.org", "198.51.100.1", 0)]), 0);
    expect(cache.size).toBe(0);
  });

  test("bounded: the least recently used goes first", () => {
    const cache = new AnswerCache(2);
    const m = answerOf(query("x.test"), [a("x.test", "198.51.100.1")]);
    cache.put("a", m, 0);
    cache.put("b", m, 0);
    cache.get("a", 1);
    cache.put("c", m, 2);
    expect([cache.get("a", 3), cache.get("b", 3), cache.get("c", 3)].map((x) => x !== null)).toEqual([true, false, true]);
  });
});

describe("DNS over TCP framing", () => {
  test("a message sent a byte at a time comes out once and whole, each byte copied once (not the held part again per byte)", () => {
    const message = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff);
    const stream = framed(message);
    const frames = new TcpFrames();
    const out: Uint8Array[] = [];
    // Bytes copied by typed-array set() while the stream is pushed.
    let copied = 0;
    const set = Uint8Array.prototype.set;
    Uint8Array.prototype.set = function (this: Uint8Array, source: ArrayLike<number>, offset?: number) {
      copied += source.length;
      return set.call(this, source, offset);
    } as typeof set;
    try {
      for (let i = 0; i < stream.length; i++) {
        out.push(...frames.push(stream.subarray(i, i + 1)));
        if (i < stream.length - 1) expect(out).toEqual([]);
      }
    } finally {
      Uint8Array.prototype.set = set;
    }
    expect(out).toEqual([message]);
    expect(frames.pending).toBe(0);
    expect(copied).toBeLessThanOrEqual(stream.length);
  });

  test("an empty message, and a length prefix split across reads", () => {
    const frames = new TcpFrames();
    expect(frames.push(Uint8Array.from([0, 0]))).toEqual([new Uint8Array(0)]);
    expect(frames.push(Uint8Array.from([0]))).toEqual([]);
    expect(frames.pending).toBe(1);
    expect(frames.push(Uint8Array.from([2, 9]))).toEqual([]);
    expect(frames.pending).toBe(3);
    expect(frames.push(Uint8Array.from([8, 0, 0, 0, 2, 5]))).toEqual([Uint8Array.from([9, 8]), new Uint8Array(0)]);
    expect(frames.pending).toBe(3);
  });

  test("property: messages cut into any chunks come out whole and in order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 20 }),
        (messages, cuts) => {
          const stream = Uint8Array.from(messages.flatMap((m) => [...framed(m)]));
          const frames = new TcpFrames();
          const out: Uint8Array[] = [];
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const n = cuts[i % cuts.length]!;
            out.push(...frames.push(stream.subarray(at, at + n)));
            at += n;
          }
          expect(out).toEqual(messages);
          expect(frames.pending).toBe(0);
        },
      ),
    );
  });
});
