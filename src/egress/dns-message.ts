// DNS messages (RFC 1035 4.1, EDNS RFC 6891) for burrow's per-sandbox
// resolver: parse a query from the sandbox and an answer from upstream,
// build the answer or refusal the sandbox gets. Pure: bytes in, bytes out.
//
// burrow's own codec rather than the dns-packet package (docs/egress.md
// "Why not dns-packet"): dns-packet decodes labels as UTF-8 and joins them
// with dots unescaped, so the one-label name "pypi.org" and the two labels
// pypi, org decode to the same string, and bytes that are not UTF-8 collapse
// to U+FFFD. A policy that matches names must see exactly one text per wire
// name. Here every byte outside [A-Za-z0-9-_] in a label is written \DDD
// (RFC 1035 5.1), so such a name never matches an allow pattern.
//
// Every name burrow writes is uncompressed, and names inside the rdata of
// the types that may be compressed (RFC 3597 4: NS, CNAME, SOA, PTR, MX;
// and SRV, which some servers compress against RFC 2782) are expanded when
// parsed, so any record can be written back anywhere.

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, SVCB: 64, HTTPS: 65, ANY: 255 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const CLASS_IN = 1;
export const OPCODE_QUERY = 0;
/** The most burrow sends over UDP without EDNS (RFC 1035 4.2.1)... */
export const UDP_PLAIN_MAX = 512;
/** ...and with it (the DNS Flag Day 2020 size: no IP fragmentation). */
export const UDP_EDNS_MAX = 1232;

export class DnsFormatError extends Error {
  override name = "DnsFormatError";
}

export interface Header {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  rcode: number;
}

export interface Question {
  /** Presentation form, case as sent, no trailing dot; "." for the root. */
  name: string;
  type: number;
  class: number;
}

export type RecordData =
  | { kind: "address"; address: string }
  | { kind: "name"; name: string }
  /** Position-independent rdata (names in it expanded). */
  | { kind: "raw"; bytes: Uint8Array };

export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: RecordData;
}

export interface DnsMessage {
  header: Header;
  questions: Question[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
}

const MAX_NAME_WIRE = 255;
const PLAIN_BYTE = /[A-Za-z0-9_-]/;

// ---------------------------------------------------------------- names

function labelText(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    s += PLAIN_BYTE.test(c) ? c : `\\${String(b).padStart(3, "0")}`;
  }
  return s;
}

/** Presentation text to labels: `\DDD` and `\X` escapes as in RFC 1035 5.1. */
export function nameToLabels(name: string): Uint8Array[] {
  if (name === "." || name === "") return [];
  const text = name.endsWith(".") && !name.endsWith("\\.") ? name.slice(0, -1) : name;
  const labels: Uint8Array[] = [];
  let current: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\\") {
      const digits = /^\d{3}/.exec(text.slice(i + 1));
      if (digits) {
        const n = Number(digits[0]);
        if (n > 255) throw new DnsFormatError(`bad escape \\${digits[0]} in ${JSON.stringify(name)}`);
        current.push(n);
        i += 3;
      } else if (i + 1 < text.length) {
        current.push(text.charCodeAt(++i));
      } else throw new DnsFormatError(`a name ends in '\\': ${JSON.stringify(name)}`);
    } else if (c === ".") {
      labels.push(Uint8Array.from(current));
      current = [];
    } else {
      const code = text.charCodeAt(i);
      if (code > 0x7e || code < 0x21) throw new DnsFormatError(`unescaped byte ${code} in ${JSON.stringify(name)}`);
      current.push(code);
    }
  }
  labels.push(Uint8Array.from(current));
  for (const l of labels) {
    if (l.length === 0) throw new DnsFormatError(`an empty label in ${JSON.stringify(name)}`);
    if (l.length > 63) throw new DnsFormatError(`a label longer than 63 bytes in ${JSON.stringify(name)}`);
  }
  if (labels.reduce((n, l) => n + l.length + 1, 1) > MAX_NAME_WIRE) throw new DnsFormatError(`a name longer than ${MAX_NAME_WIRE} bytes`);
  return labels;
}

// ---------------------------------------------------------------- reading

class Reader {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    public offset = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.offset + n > this.bytes.length) throw new DnsFormatError(`the message ends inside ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.offset++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.offset);
    this.offset += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }
  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /**
   * A possibly compressed name. A pointer must lead strictly backwards, to
   * before the label sequence that holds it, so pointers cannot loop.
   */
  labels(): Uint8Array[] {
    const labels: Uint8Array[] = [];
    let pos = this.offset;
    let segmentStart = pos;
    let end: number | null = null;
    let wire = 1;
    for (;;) {
      if (pos >= this.bytes.length) throw new DnsFormatError("the message ends inside a name");
      const len = this.bytes[pos]!;
      if (len === 0) {
        pos += 1;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        if (pos + 1 >= this.bytes.length) throw new DnsFormatError("the message ends inside a name pointer");
        const target = ((len & 0x3f) << 8) | this.bytes[pos + 1]!;
        if (target >= segmentStart) throw new DnsFormatError("a name pointer that does not lead backwards");
        end ??= pos + 2;
        pos = target;
        segmentStart = target;
        continue;
      }
      if ((len & 0xc0) !== 0) throw new DnsFormatError(`an unknown label type 0x${len.toString(16)}`);
      if (pos + 1 + len > this.bytes.length) throw new DnsFormatError("the message ends inside a label");
      wire += len + 1;
      if (wire > MAX_NAME_WIRE) throw new DnsFormatError(`a name longer than ${MAX_NAME_WIRE} bytes`);
      labels.push(this.bytes.slice(pos + 1, pos + 1 + len));
      pos += 1 + len;
    }
    this.offset = end ?? pos;
    return labels;
  }
  name(): string {
    const labels = this.labels();
    return labels.length === 0 ? "." : labels.map(labelText).join(".");
  }
}

function wireName(labels: Uint8Array[]): number[] {
  const out: number[] = [];
  for (const l of labels) out.push(l.length, ...l);
  out.push(0);
  return out;
}

function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // RFC 5952: the longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i >= 2) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

function readRecord(r: Reader): ResourceRecord {
  const name = r.name();
  const type = r.u16("a record's type");
  const klass = r.u16("a record's class");
  const ttl = r.u32("a record's TTL");
  const length = r.u16("a record's length");
  r.need(length, "a record's data");
  const end = r.offset + length;
  let data: RecordData;
  const rdata = (): Uint8Array => r.take(length, "a record's data");
  if ((type === TYPE.A && klass === CLASS_IN) || (type === TYPE.AAAA && klass === CLASS_IN)) {
    const want = type === TYPE.A ? 4 : 16;
    if (length !== want) throw new DnsFormatError(`an ${type === TYPE.A ? "A" : "AAAA"} record of ${length} bytes`);
    data = { kind: "address", address: formatAddress(rdata()) };
  } else if (type === TYPE.CNAME || type === TYPE.NS || type === TYPE.PTR) {
    data = { kind: "name", name: r.name() };
  } else if (type === TYPE.MX) {
    const preference = r.u16("an MX record");
    data = { kind: "raw", bytes: Uint8Array.from([preference >> 8, preference & 0xff, ...wireName(r.labels())]) };
  } else if (type === TYPE.SRV && length >= 7) {
    // RFC 2782 forbids compressing the target, but some servers do: expanded like MX's.
    const fixed = r.take(6, "an SRV record");
    data = { kind: "raw", bytes: Uint8Array.from([...fixed, ...wireName(r.labels())]) };
  } else if (type === TYPE.SOA) {
    const names = [...wireName(r.labels()), ...wireName(r.labels())];
    data = { kind: "raw", bytes: Uint8Array.from([...names, ...r.take(20, "an SOA record")]) };
  } else {
    data = { kind: "raw", bytes: rdata().slice() };
  }
  if (r.offset !== end) throw new DnsFormatError(`a type ${type} record whose data is not ${length} bytes`);
  return { name, type, class: klass, ttl, data };
}

/** A whole message, strictly: no bytes left over, counts that match, pointers that lead backwards. */
export function parseMessage(bytes: Uint8Array): DnsMessage {
  const r = new Reader(bytes);
  const id = r.u16("the header");
  const flags = r.u16("the header");
  const counts = [r.u16("the header"), r.u16("the header"), r.u16("the header"), r.u16("the header")] as const;
  const header: Header = {
    id,
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    ad: (flags & 0x0020) !== 0,
    cd: (flags & 0x0010) !== 0,
    rcode: flags & 0xf,
  };
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]; i++) questions.push({ name: r.name(), type: r.u16("a question"), class: r.u16("a question") });
  const section = (n: number) => Array.from({ length: n }, () => readRecord(r));
  const answers = section(counts[1]);
  const authorities = section(counts[2]);
  const additionals = section(counts[3]);
  if (r.offset !== bytes.length) throw new DnsFormatError(`${bytes.length - r.offset} bytes after the message`);
  return { header, questions, answers, authorities, additionals };
}

// ---------------------------------------------------------------- writing

function addressBytes(address: string, type: number): number[] {
  if (type === TYPE.A) {
    const parts = address.split(".").map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new DnsFormatError(`not an IPv4 address: ${address}`);
    return parts;
  }
  const [head = "", tail] = address.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) throw new DnsFormatError(`not an IPv6 address: ${address}`);
  return groups.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}
function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

function encodeRecord(rec: ResourceRecord): number[] {
  let rdata: number[];
  if (rec.data.kind === "address") rdata = addressBytes(rec.data.address, rec.type);
  else if (rec.data.kind === "name") rdata = wireName(nameToLabels(rec.data.name));
  else rdata = [...rec.data.bytes];
  if (rdata.length > 0xffff) throw new DnsFormatError("a record's data is longer than 65535 bytes");
  return [...wireName(nameToLabels(rec.name)), ...u16(rec.type), ...u16(rec.class), ...u32(rec.ttl), ...u16(rdata.length), ...rdata];
}

function encodeFlags(h: Header): number {
  return (
    (h.qr ? 0x8000 : 0) |
    ((h.opcode & 0xf) << 11) |
    (h.aa ? 0x0400 : 0) |
    (h.tc ? 0x0200 : 0) |
    (h.rd ? 0x0100 : 0) |
    (h.ra ? 0x0080 : 0) |
    (h.ad ? 0x0020 : 0) |
    (h.cd ? 0x0010 : 0) |
    (h.rcode & 0xf)
  );
}

function encodeAll(m: DnsMessage): Uint8Array {
  const out: number[] = [
    ...u16(m.header.id),
    ...u16(encodeFlags(m.header)),
    ...u16(m.questions.length),
    ...u16(m.answers.length),
    ...u16(m.authorities.length),
    ...u16(m.additionals.length),
  ];
  for (const q of m.questions) out.push(...wireName(nameToLabels(q.name)), ...u16(q.type), ...u16(q.class));
  for (const rec of [...m.answers, ...m.authorities, ...m.additionals]) out.push(...encodeRecord(rec));
  return Uint8Array.from(out);
}

/**
 * The message's bytes. Longer than `maxSize` (a UDP answer): sent with TC
 * set and only its question and OPT record, so the client asks again over
 * TCP (RFC 1035 4.2.1, RFC 7766).
 */
export function encodeMessage(m: DnsMessage, maxSize = 65_535): Uint8Array {
  const whole = encodeAll(m);
  if (whole.length <= maxSize) return whole;
  const cut = encodeAll({
    ...m,
    header: { ...m.header, tc: true },
    answers: [],
    authorities: [],
    additionals: m.additionals.filter((r) => r.type === TYPE.OPT),
  });
  if (cut.length > maxSize) throw new DnsFormatError(`even a truncated answer is longer than ${maxSize} bytes`);
  return cut;
}

// ---------------------------------------------------------------- answers

/** The UDP size a query allows its answer: its EDNS OPT's, within [512, 1232]. */
export function udpLimit(query: DnsMessage): number {
  const opt = query.additionals.find((r) => r.type === TYPE.OPT);
  return opt ? Math.max(UDP_PLAIN_MAX, Math.min(UDP_EDNS_MAX, opt.class)) : UDP_PLAIN_MAX;
}

/** burrow's own OPT record (RFC 6891 6.1.2), given when the query had one. */
function ourOpt(query: DnsMessage): ResourceRecord[] {
  return query.additionals.some((r) => r.type === TYPE.OPT)
    ? [{ name: ".", type: TYPE.OPT, class: UDP_EDNS_MAX, ttl: 0, data: { kind: "raw", bytes: new Uint8Array() } }]
    : [];
}

/** An answer to `query` with `answers` (empty for NODATA) and `rcode`. */
export function answerTo(query: DnsMessage, answers: ResourceRecord[], rcode: number = RCODE.NOERROR): DnsMessage {
  return {
    header: {
      id: query.header.id,
      qr: true,
      opcode: query.header.opcode,
      aa: false,
      tc: false,
      rd: query.header.rd,
      ra: true,
      ad: false,
      cd: query.header.cd,
      rcode,
    },
    questions: query.questions.slice(0, 1),
    answers,
    authorities: [],
    additionals: ourOpt(query),
  };
}

/** A refusal (REFUSED, FORMERR, NOTIMP, SERVFAIL) with the question echoed and nothing else. */
export function refusal(query: DnsMessage, rcode: number = RCODE.REFUSED): DnsMessage {
  return answerTo(query, [], rcode);
}

/**
 * Why a message from the sandbox is not a query burrow answers, with the
 * rcode to answer it with, or null when it is one: a standard query
 * (opcode 0, QR clear) with exactly one question of class IN.
 */
export function queryProblem(m: DnsMessage): { rcode: number; reason: string } | null {
  if (m.header.qr) return { rcode: RCODE.FORMERR, reason: "a response, not a query" };
  if (m.header.opcode !== OPCODE_QUERY) return { rcode: RCODE.NOTIMP, reason: `opcode ${m.header.opcode}` };
  if (m.questions.length !== 1) return { rcode: RCODE.FORMERR, reason: `${m.questions.length} questions` };
  if (m.questions[0]!.class !== CLASS_IN) return { rcode: RCODE.REFUSED, reason: `class ${m.questions[0]!.class}` };
  return null;
}
