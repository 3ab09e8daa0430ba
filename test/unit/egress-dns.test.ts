// burrow's DNS codec (src/egress/dns-message.ts) and what the per-sandbox
// resolver answers (src/egress/resolver-policy.ts): strict parsing, one text
// per wire name, REFUSED for names no rule allows, CNAME chains, rebinding.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  answerTo,
  DnsFormatError,
  type DnsMessage,
  encodeMessage,
  nameToLabels,
  parseMessage,
  queryProblem,
  RCODE,
  type ResourceRecord,
  TYPE,
  UDP_PLAIN_MAX,
  udpLimit,
} from "../../src/egress/dns-message.ts";
import { MAX_LEARNED_SECONDS } from "../../src/egress/learned.ts";
import { compilePolicy, parseEgressFlags } from "../../src/egress/policy.ts";
import { decideAnswer, decideQuery } from "../../src/egress/resolver-policy.ts";

const header = { id: 0x1234, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0 };
const query = (name: string, type: number = TYPE.A, edns = false): DnsMessage => ({
  header,
  questions: [{ name, type, class: 1 }],
  answers: [],
  authorities: [],
  additionals: edns ? [{ name: ".", type: TYPE.OPT, class: 4096, ttl: 0, data: { kind: "raw", bytes: new Uint8Array() } }] : [],
});
const a = (name: string, address: string, ttl = 300): ResourceRecord => ({ name, type: TYPE.A, class: 1, ttl, data: { kind: "address", address } });
const aaaa = (name: string, address: string, ttl = 300): ResourceRecord => ({ name, type: TYPE.AAAA, class: 1, ttl, data: { kind: "address", address } });
const cname = (name: string, target: string, ttl = 300): ResourceRecord => ({ name, type: TYPE.CNAME, class: 1, ttl, data: { kind: "name", name: target } });
const upstreamFor = (q: DnsMessage, answers: ResourceRecord[], rcode = 0): DnsMessage => ({
  header: { ...q.header, qr: true, ra: true, rcode },
  questions: q.questions,
  answers,
  authorities: [],
  additionals: [],
});
const roundTrip = (m: DnsMessage) => parseMessage(encodeMessage(m));

describe("codec", () => {
  test("a query and an answer survive encoding, with A, AAAA, CNAME and raw records", () => {
    const q = query("Files.PythonHosted.org", TYPE.AAAA, true);
    expect(roundTrip(q)).toEqual(q);
    const txt: ResourceRecord = { name: "a.test", type: TYPE.TXT, class: 1, ttl: 5, data: { kind: "raw", bytes: Uint8Array.from([3, 104, 105, 33]) } };
    const r = answerTo(q, [
      cname("Files.PythonHosted.org", "dualstack.example"),
      aaaa("dualstack.example", "2001:db8::1"),
      a("dualstack.example", "198.51.100.10"),
      txt,
    ]);
    expect(roundTrip(r)).toEqual(r);
  });

  test("real bytes: a query as dig sends it", () => {
    // dig +noedns example.com A: id 0xabcd, RD.
    const bytes = Uint8Array.from([0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, ...Buffer.from("example"), 3, ...Buffer.from("com"), 0, 0, 1, 0, 1]);
    const m = parseMessage(bytes);
    expect(m.header).toMatchObject({ id: 0xabcd, rd: true, qr: false, opcode: 0 });
    expect(m.questions).toEqual([{ name: "example.com", type: 1, class: 1 }]);
    expect(encodeMessage(m)).toEqual(bytes);
  });

  test("compressed names are read, and written back uncompressed", () => {
    const name = [7, ...Buffer.from("example"), 3, ...Buffer.from("com"), 0];
    const bytes = Uint8Array.from([
      0,
      1,
      0x81,
      0x80,
      0,
      1,
      0,
      2,
      0,
      0,
      0,
      0,
      ...name,
      0,
      1,
      0,
      1,
      // www.<ptr to 12> CNAME <ptr to 12>
      3,
      ...Buffer.from("www"),
      0xc0,
      12,
      0,
      5,
      0,
      1,
      0,
      0,
      0,
      60,
      0,
      2,
      0xc0,
      12,
      0xc0,
      12,
      0,
      1,
      0,
      1,
      0,
      0,
      0,
      60,
      0,
      4,
      198,
      51,
      100,
      10,
    ]);
    const m = parseMessage(bytes);
    expect(m.answers).toEqual([cname("www.example.com", "example.com", 60), a("example.com", "198.51.100.10", 60)]);
    expect(roundTrip(m)).toEqual(m);
  });

  test("a compressed SRV target is expanded, so the record can be written anywhere", () => {
    const name = [4, ...Buffer.from("host"), 4, ...Buffer.from("test"), 0];
    const bytes = Uint8Array.from([
      0,
      1,
      0x81,
      0x80,
      0,
      1,
      0,
      1,
      0,
      0,
      0,
      0,
      ...name,
      0,
      33,
      0,
      1,
      0xc0,
      12,
      0,
      33,
      0,
      1,
      0,
      0,
      0,
      60,
      0,
      8,
      0,
      1,
      0,
      2,
      0x01,
      0xbb,
      0xc0,
      12,
    ]);
    const m = parseMessage(bytes);
    expect(m.answers[0]!.data).toEqual({ kind: "raw", bytes: Uint8Array.from([0, 1, 0, 2, 0x01, 0xbb, ...name]) });
    expect(roundTrip(m)).toEqual(m);
  });

  test("one text per wire name: a dot or any other byte inside a label is escaped", () => {
    const bytes = Uint8Array.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 8, ...Buffer.from("pypi.org"), 0, 0, 1, 0, 1]);
    expect(parseMessage(bytes).questions[0]!.name).toBe("pypi\\046org");
    const odd = Uint8Array.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0xff, 0x20, 0x5c, 0, 0, 1, 0, 1]);
    expect(parseMessage(odd).questions[0]!.name).toBe("\\255\\032\\092");
    expect(encodeMessage(parseMessage(odd))).toEqual(odd);
    expect(nameToLabels("a\\.b.c").map((l) => l.length)).toEqual([3, 1]);
  });

  test("malformed messages are refused: forward and self pointers, overruns, bad lengths, trailing bytes", () => {
    const head = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for (const bad of [
      [...head, 0xc0, 12, 0, 1, 0, 1], // points at itself
      [...head, 0xc0, 14, 0, 1, 0, 1, 0], // points forwards
      [...head, 5, 97, 98], // label runs off the end
      [...head, 0x40, 0, 0, 1, 0, 1], // extended label type
      [...head, 0, 0, 1], // question cut short
      [...head, 0, 0, 1, 0, 1, 9], // a byte after the message
      [0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3], // A of 3 bytes
      [0, 1],
    ]) {
      expect(() => parseMessage(Uint8Array.from(bad)), JSON.stringify(bad)).toThrow(DnsFormatError);
    }
    expect(() => nameToLabels(`${"a".repeat(64)}.test`)).toThrow(DnsFormatError);
    expect(() => nameToLabels(Array(130).fill("a").join("."))).toThrow(DnsFormatError);
  });

  test("property: random bytes either parse or fail with DnsFormatError, never anything else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), (body, head) => {
        const bytes = Uint8Array.from([...head, ...body]);
        try {
          parseMessage(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(DnsFormatError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test("property: any name of plain or odd bytes encodes, parses back to the same text, and matches only by its text", () => {
    const label = fc.uint8Array({ minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 5 }), (labels) => {
        const wire = labels.flatMap((l) => [l.length, ...l]);
        const bytes = Uint8Array.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...wire, 0, 0, 1, 0, 1]);
        const m = parseMessage(bytes);
        expect(encodeMessage(m)).toEqual(bytes);
        expect(nameToLabels(m.questions[0]!.name).map((l) => [...l])).toEqual(labels.map((l) => [...l]));
      }),
    );
  });

  test("an answer too long for UDP is sent truncated, with its question and OPT only", () => {
    const q = query("many.test");
    const answers = Array.from({ length: 60 }, (_, i) => a("many.test", `198.51.100.${i}`));
    const bytes = encodeMessage(answerTo(q, answers), udpLimit(q));
    expect(bytes.length).toBeLessThanOrEqual(UDP_PLAIN_MAX);
    const m = parseMessage(bytes);
    expect(m.header.tc).toBe(true);
    expect(m.answers).toEqual([]);
    expect(udpLimit(query("x.test", TYPE.A, true))).toBe(1232);
  });

  test("what is not a standard query is answered FORMERR or NOTIMP", () => {
    expect(queryProblem(query("a.test"))).toBeNull();
    expect(queryProblem({ ...query("a.test"), header: { ...header, opcode: 2 } })).toMatchObject({ rcode: RCODE.NOTIMP });
    expect(queryProblem({ ...query("a.test"), questions: [] })).toMatchObject({ rcode: RCODE.FORMERR });
    expect(queryProblem({ ...query("a.test"), header: { ...header, qr: true } })).toMatchObject({ rcode: RCODE.FORMERR });
  });
});

describe("the resolver's decisions", () => {
  const policy = compilePolicy(
    parseEgressFlags({ allowHost: ["allowed.test", "*.allowed.test:443"], allowCidr: [], denyCidr: ["198.51.100.20"], logOnly: false })!,
    { hostAddresses: [] },
  );

  test("a name no rule allows is REFUSED without asking upstream", () => {
    const d = decideQuery(policy, query("denied.test"));
    expect(d).toMatchObject({ forward: false, reason: "name not allowed" });
    if (!d.forward) expect(d.response.header).toMatchObject({ id: 0x1234, qr: true, rcode: RCODE.REFUSED });
    expect(decideQuery(policy, query("allowed.test.evil.example")).forward).toBe(false);
    expect(decideQuery(policy, query("allowed\\046test")).forward).toBe(false);
  });

  test("an allowed name is forwarded, to learn for every rule that matches it", () => {
    expect(decideQuery(policy, query("ALLOWED.test."))).toEqual({ forward: true, rules: [0] });
    expect(decideQuery(policy, query("cdn.allowed.test", TYPE.AAAA))).toEqual({ forward: true, rules: [1] });
    const denyOnly = compilePolicy(parseEgressFlags({ allowHost: [], allowCidr: [], denyCidr: ["private"], logOnly: false })!, { hostAddresses: [] });
    expect(decideQuery(denyOnly, query("anything.example"))).toEqual({ forward: true, rules: [] });
  });

  test("a CNAME chain from an allowed name is answered and its addresses learned, TTLs cut to a day", () => {
    const q = query("cdn.allowed.test");
    const d = decideAnswer(
      policy,
      q,
      upstreamFor(q, [cname("cdn.allowed.test", "edge.cdn.example", 10 ** 7), a("edge.cdn.example", "198.51.100.10", 30)]),
      [1],
    );
    expect(d.response.header.rcode).toBe(RCODE.NOERROR);
    expect(d.response.answers).toEqual([cname("cdn.allowed.test", "edge.cdn.example", MAX_LEARNED_SECONDS), a("edge.cdn.example", "198.51.100.10", 30)]);
    expect(d.learn).toEqual([{ address: "198.51.100.10", rule: 1, ttl: 30 }]);
  });

  test("rebinding: loopback, private and denied answers are left out; nothing left is REFUSED", () => {
    const q = query("rebind.allowed.test");
    const all = decideAnswer(policy, q, upstreamFor(q, [a("rebind.allowed.test", "127.0.0.1"), a("rebind.allowed.test", "10.0.0.1")]), [1]);
    expect(all.response.header.rcode).toBe(RCODE.REFUSED);
    expect(all.learn).toEqual([]);
    expect(all.refused.map((r) => [r.address, r.verdict.reason])).toEqual([
      ["127.0.0.1", "rebinding"],
      ["10.0.0.1", "rebinding"],
    ]);
    const mixed = decideAnswer(policy, q, upstreamFor(q, [a("rebind.allowed.test", "198.51.100.20"), a("rebind.allowed.test", "198.51.100.10")]), [1]);
    expect(mixed.response.answers).toEqual([a("rebind.allowed.test", "198.51.100.10")]);
    expect(mixed.learn.map((l) => l.address)).toEqual(["198.51.100.10"]);
    expect(mixed.refused[0]).toMatchObject({ address: "198.51.100.20", verdict: { reason: "denied range" } });
  });

  test("rebinding through NAT64 and to the host's own address: left out; a public NAT64 address is answered", () => {
    const withHost = compilePolicy(parseEgressFlags({ allowHost: ["allowed.test"], allowCidr: [], denyCidr: [], logOnly: false })!, {
      hostAddresses: ["203.0.113.9"],
    });
    const q6 = query("allowed.test", TYPE.AAAA);
    const six = decideAnswer(
      withHost,
      q6,
      upstreamFor(q6, [aaaa("allowed.test", "64:ff9b::a00:1"), aaaa("allowed.test", "64:ff9b:1::a00:1"), aaaa("allowed.test", "64:ff9b::c633:640a")]),
      [0],
    );
    expect(six.response.answers).toEqual([aaaa("allowed.test", "64:ff9b::c633:640a")]);
    expect(six.learn.map((l) => l.address)).toEqual(["64:ff9b::c633:640a"]);
    expect(six.refused.map((r) => [r.address, r.verdict.reason])).toEqual([
      ["64:ff9b::a00:1", "rebinding"],
      ["64:ff9b:1::a00:1", "rebinding"],
    ]);
    const q4 = query("allowed.test");
    const host = decideAnswer(withHost, q4, upstreamFor(q4, [a("allowed.test", "203.0.113.9")]), [0]);
    expect(host.response.header.rcode).toBe(RCODE.REFUSED);
    expect(host.learn).toEqual([]);
  });

  test("stray records, other questions, truncation and upstream errors", () => {
    const q = query("allowed.test");
    const stray = decideAnswer(policy, q, upstreamFor(q, [a("allowed.test", "198.51.100.10"), a("other.example", "203.0.113.9")]), [0]);
    expect(stray.learn.map((l) => l.address)).toEqual(["198.51.100.10"]);
    expect(stray.response.answers).toHaveLength(1);
    const other = decideAnswer(policy, q, upstreamFor(query("denied.test"), [a("denied.test", "203.0.113.9")]), [0]);
    expect(other).toMatchObject({ learn: [], reason: "upstream answered another question" });
    expect(other.response.header.rcode).toBe(RCODE.SERVFAIL);
    expect(decideAnswer(policy, q, { ...upstreamFor(q, []), header: { ...header, qr: true, tc: true } }, [0]).retryOverTcp).toBe(true);
    expect(decideAnswer(policy, q, upstreamFor(q, [], RCODE.NXDOMAIN), [0]).response.header.rcode).toBe(RCODE.NXDOMAIN);
    const loop = decideAnswer(policy, q, upstreamFor(q, [cname("allowed.test", "x.example"), cname("x.example", "allowed.test")]), [0]);
    expect(loop.response.header.rcode).toBe(RCODE.SERVFAIL);
  });

  test("other types pass for allowed names and open nothing", () => {
    const q = query("allowed.test", TYPE.TXT);
    const txt: ResourceRecord = { name: "allowed.test", type: TYPE.TXT, class: 1, ttl: 60, data: { kind: "raw", bytes: Uint8Array.from([2, 104, 105]) } };
    const d = decideAnswer(policy, q, upstreamFor(q, [txt, a("allowed.test", "198.51.100.10")]), [0]);
    expect(d.response.answers).toEqual([txt]);
    expect(d.learn).toEqual([]);
  });

  test("property: an answered address is never in a denied, loopback or private range, nor learned there", () => {
    const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join("."));
    fc.assert(
      fc.property(fc.array(ipv4, { minLength: 1, maxLength: 6 }), (addresses) => {
        const q = query("allowed.test");
        const d = decideAnswer(
          policy,
          q,
          upstreamFor(
            q,
            addresses.map((ip) => a("allowed.test", ip)),
          ),
          [0],
        );
        for (const r of d.response.answers) {
          const ip = (r.data as { address: string }).address;
          expect(ip).not.toBe("198.51.100.20");
          expect(/^(127|10|0|192\.168|169\.254)\./.test(ip)).toBe(false);
        }
        expect(d.learn.map((l) => l.address)).toEqual(d.response.answers.map((r) => (r.data as { address: string }).address));
      }),
    );
  });
});
