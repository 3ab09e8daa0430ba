// A small DNS server for the egress resolver's tests and bench: the
// "upstream" the resolver forwards to, answering fixed records over UDP and
// TCP on one port, counting what it is asked, and a client that asks with
// burrow's own codec (src/egress/dns-message.ts).
import type { Socket, TCPSocketListener, udp } from "bun";
import { answerTo, type DnsMessage, encodeMessage, parseMessage, RCODE, type ResourceRecord, TYPE } from "../../src/egress/dns-message.ts";
import { canonicalName } from "../../src/egress/names.ts";
import { framed, TcpFrames } from "../../src/egress/forwarding.ts";

export const a = (name: string, address: string, ttl = 300): ResourceRecord => ({ name, type: TYPE.A, class: 1, ttl, data: { kind: "address", address } });
export const cname = (name: string, target: string, ttl = 300): ResourceRecord => ({
  name,
  type: TYPE.CNAME,
  class: 1,
  ttl,
  data: { kind: "name", name: target },
});

export interface Zone {
  /** Records by asked name (canonical); for a name with none: NXDOMAIN. */
  records: Record<string, ResourceRecord[]>;
  /** Names answered over UDP with TC set and nothing else (the client must ask over TCP). */
  truncated?: string[];
  /** Names whose queries are held until release(). */
  held?: string[];
  /** Names whose UDP answer is preceded by forgeries: another ID, and another question, each with the address 192.0.2.66. */
  forged?: string[];
  /** Records for a name `records` lacks (a whole zone of names, for uncached lookups). */
  otherwise?: (name: string) => ResourceRecord[] | undefined;
}

export interface FakeDns {
  port: number;
  /** Queries seen, as "udp name" or "tcp name" (canonical). */
  seen: string[];
  /** Held queries waiting now. */
  heldCount(): number;
  release(): void;
  close(): void;
}

/** A server on `host`:`port` (0: any free port); `silent`: one that never answers (a dead upstream). */
export async function fakeDns(zone: Zone, host = "127.0.0.1", port = 0, silent = false): Promise<FakeDns> {
  const seen: string[] = [];
  const held: (() => void)[] = [];
  const answer = (q: DnsMessage, transport: "udp" | "tcp"): DnsMessage => {
    const name = canonicalName(q.questions[0]!.name);
    if (transport === "udp" && zone.truncated?.includes(name)) return { ...answerTo(q, []), header: { ...answerTo(q, []).header, tc: true } };
    const records = zone.records[name] ?? zone.otherwise?.(name);
    return records ? answerTo(q, records) : answerTo(q, [], RCODE.NXDOMAIN);
  };
  const respond = (bytes: Uint8Array, transport: "udp" | "tcp", send: (out: Uint8Array) => void) => {
    let q: DnsMessage;
    try {
      q = parseMessage(bytes);
    } catch {
      return;
    }
    const name = canonicalName(q.questions[0]?.name ?? "");
    seen.push(`${transport} ${name}`);
    if (silent) return;
    const go = () => {
      if (transport === "udp" && zone.forged?.includes(name)) {
        const forged = answerTo(q, [{ ...(zone.records[name]?.[0] ?? a(name, "192.0.2.66")), data: { kind: "address", address: "192.0.2.66" } }]);
        send(encodeMessage({ ...forged, header: { ...forged.header, id: (q.header.id + 1) & 0xffff } }));
        send(encodeMessage({ ...forged, questions: [{ ...q.questions[0]!, name: `x${name}` }] }));
      }
      send(encodeMessage(answer(q, transport)));
    };
    if (zone.held?.includes(name)) held.push(go);
    else go();
  };
  const udpSocket: udp.Socket<"uint8array"> = await Bun.udpSocket({
    hostname: host,
    port,
    binaryType: "uint8array",
    socket: {
      data(s, data, rport, raddr) {
        respond(data, "udp", (out) => s.send(out, rport, raddr));
      },
    },
  });
  const frames = new WeakMap<Socket<unknown>, TcpFrames>();
  const tcp: TCPSocketListener<unknown> = Bun.listen({
    hostname: host,
    port: udpSocket.port,
    socket: {
      open(s) {
        frames.set(s, new TcpFrames());
      },
      data(s, data) {
        for (const f of frames.get(s)!.push(new Uint8Array(data))) respond(f, "tcp", (out) => s.write(framed(out)));
      },
    },
  });
  return {
    port: udpSocket.port,
    seen,
    heldCount: () => held.length,
    release: () => {
      for (const go of held.splice(0)) go();
    },
    close: () => {
      udpSocket.close();
      tcp.stop(true);
    },
  };
}

let nextId = 1;
export const query = (name: string, type: number = TYPE.A): DnsMessage => ({
  header: { id: nextId++ & 0xffff, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0 },
  questions: [{ name, type, class: 1 }],
  answers: [],
  authorities: [],
  additionals: [],
});

export interface DnsClient {
  /** Sends `q` to the server over UDP; resolves with the answer, and calls `onAnswer` synchronously as it arrives. */
  ask(q: DnsMessage): Promise<DnsMessage>;
  close(): void;
}

/** A UDP client of the server on 127.0.0.1:`port`; `onAnswer` runs the moment each answer arrives, before any await resumes. */
export async function dnsClient(port: number, onAnswer: (m: DnsMessage) => void = () => {}): Promise<DnsClient> {
  const waiting = new Map<number, (m: DnsMessage) => void>();
  const s = await Bun.udpSocket({
    hostname: "127.0.0.1",
    binaryType: "uint8array",
    socket: {
      data(_s, data) {
        const m = parseMessage(data);
        onAnswer(m);
        waiting.get(m.header.id)?.(m);
        waiting.delete(m.header.id);
      },
    },
  });
  return {
    ask: (q) =>
      new Promise((resolve) => {
        waiting.set(q.header.id, resolve);
        s.send(encodeMessage(q), port, "127.0.0.1");
      }),
    close: () => s.close(),
  };
}

/** Asks each of `queries` over one TCP connection to 127.0.0.1:`port`, all at once; the answers in arrival order. */
export async function askOverTcp(port: number, queries: DnsMessage[]): Promise<DnsMessage[]> {
  const frames = new TcpFrames();
  const answers: DnsMessage[] = [];
  return new Promise((resolve, reject) => {
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(s) {
          for (const q of queries) s.write(framed(encodeMessage(q)));
        },
        data(s, data) {
          for (const f of frames.push(new Uint8Array(data))) answers.push(parseMessage(f));
          if (answers.length === queries.length) {
            s.end();
            resolve(answers);
          }
        },
        close() {
          if (answers.length < queries.length) reject(new Error(`the connection closed after ${answers.length} of ${queries.length} answers`));
        },
        error(_s, e) {
          reject(e);
        },
      },
    }).catch(reject);
  });
}
