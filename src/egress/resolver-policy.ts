// What burrow's per-sandbox resolver does with a query and with upstream's
// answer (docs/egress.md "The resolver"). Pure: the daemon's resolver (not
// built yet) does the sockets, the forwarding to the host's resolvers and
// the nft set updates; it asks these two functions what to send and what to
// learn, so every rule about names lives here, tested without a network.
import { type Chain, type ChainRecord, canonicalName, followChain, matchingPatterns } from "./names.ts";
import { type AnswerVerdict, answerVerdict, type CompiledPolicy } from "./policy.ts";
import { answeredTtl } from "./learned.ts";
import { answerTo, CLASS_IN, type DnsMessage, queryProblem, RCODE, refusal, type ResourceRecord, TYPE } from "./dns-message.ts";

export type QueryDecision =
  /** Ask upstream; learn the answer's addresses for these allow rules (indexes into `allow`). */
  | { forward: true; rules: number[] }
  /** Answer the sandbox with `response` at once; `reason` goes into the refusal event. */
  | { forward: false; response: DnsMessage; reason: string };

/**
 * A query from the sandbox. With an allow rule given, only a name an
 * --allow-host pattern matches is sent upstream: any other is REFUSED
 * without asking anyone, so the name itself cannot carry data out to an
 * authoritative server of the command's choosing. With deny rules only,
 * every name is asked (answers are still filtered).
 */
export function decideQuery(policy: CompiledPolicy, query: DnsMessage): QueryDecision {
  const problem = queryProblem(query);
  if (problem) return { forward: false, response: refusal(query, problem.rcode), reason: problem.reason };
  const name = query.questions[0]!.name;
  if (policy.allow.length === 0) return { forward: true, rules: [] };
  const matched = matchingPatterns(
    policy.hosts.map((h) => h.pattern),
    name,
  ).map((i) => policy.hosts[i]!.allowIndex);
  if (matched.length === 0) return { forward: false, response: refusal(query, RCODE.REFUSED), reason: "name not allowed" };
  return { forward: true, rules: matched };
}

export interface Learn {
  address: string;
  /** Index into the policy's `allow`. */
  rule: number;
  /** The record's TTL as upstream gave it; learned.ts's learnedSeconds() makes the set's timeout of it. */
  ttl: number;
}

export interface AnswerDecision {
  /** Send this to the sandbox, after `learn` is in its allow set (never before: its connect would race the set). */
  response: DnsMessage;
  learn: Learn[];
  /** Addresses left out of the answer, and why: refusal events. */
  refused: { address: string; verdict: AnswerVerdict }[];
  /** Upstream's UDP answer was truncated: ask again over TCP, then decide on that answer. */
  retryOverTcp?: true;
  reason?: string;
}

const CHAIN_TYPES = new Set<number>([TYPE.A, TYPE.AAAA, TYPE.CNAME]);

function asChainRecord(r: ResourceRecord): ChainRecord | null {
  if (r.class !== CLASS_IN || !CHAIN_TYPES.has(r.type)) return null;
  const type = r.type === TYPE.A ? "A" : r.type === TYPE.AAAA ? "AAAA" : "CNAME";
  const data = r.data.kind === "address" ? r.data.address : r.data.kind === "name" ? r.data.name : null;
  return data === null ? null : { name: r.name, type, data, ttl: r.ttl };
}

/**
 * Upstream's answer to a query `decideQuery` forwarded. The sandbox gets the
 * CNAME chain from the asked name and the chain's addresses that
 * `answerVerdict` keeps (rebinding into a denied, loopback or private
 * range, the host's own addresses or a NAT64 form of them is left out; if
 * that leaves nothing of a non-empty answer, REFUSED), with
 * TTLs cut to how long burrow keeps the address allowed. For other types
 * (MX, TXT, SRV, HTTPS...) the records of the chain's names of the asked
 * type pass unchanged: they open nothing, since only A/AAAA answers are
 * learned. Authority and additional sections are dropped (glue is not
 * learned either). Upstream's NXDOMAIN and SERVFAIL pass through.
 */
export function decideAnswer(policy: CompiledPolicy, query: DnsMessage, upstream: DnsMessage, rules: readonly number[]): AnswerDecision {
  const q = query.questions[0]!;
  const uq = upstream.questions[0];
  const same = upstream.header.id === query.header.id && upstream.header.qr && uq && canonicalName(uq.name) === canonicalName(q.name) && uq.type === q.type;
  if (!same) return { response: refusal(query, RCODE.SERVFAIL), learn: [], refused: [], reason: "upstream answered another question" };
  if (upstream.header.tc) return { response: refusal(query, RCODE.SERVFAIL), learn: [], refused: [], retryOverTcp: true };
  if (upstream.header.rcode !== RCODE.NOERROR)
    return { response: refusal(query, upstream.header.rcode), learn: [], refused: [], reason: `upstream rcode ${upstream.header.rcode}` };

  const chainRecords = upstream.answers.map(asChainRecord);
  const chain: Chain | string = followChain(
    q.name,
    chainRecords.filter((r): r is ChainRecord => r !== null),
  );
  if (typeof chain === "string") return { response: refusal(query, RCODE.SERVFAIL), learn: [], refused: [], reason: chain };

  const onChain = new Set(chain.names);
  const cnames = upstream.answers.filter((r, i) => r.type === TYPE.CNAME && chainRecords[i] && onChain.has(canonicalName(r.name)));
  const out: ResourceRecord[] = cnames.map((r) => ({ ...r, ttl: answeredTtl(r.ttl) }));
  const learn: Learn[] = [];
  const refused: AnswerDecision["refused"] = [];
  let offered = 0;

  if (q.type === TYPE.A || q.type === TYPE.AAAA || q.type === TYPE.ANY || q.type === TYPE.CNAME) {
    const last = chain.names[chain.names.length - 1]!;
    for (const r of upstream.answers) {
      const c = asChainRecord(r);
      if (!c || c.type === "CNAME" || canonicalName(c.name) !== last) continue;
      if (q.type !== TYPE.ANY && q.type !== TYPE.CNAME && r.type !== q.type) continue;
      offered++;
      const v = answerVerdict(policy, c.data);
      if (!v.keep) {
        refused.push({ address: c.data, verdict: v });
        continue;
      }
      out.push({ ...r, ttl: answeredTtl(Math.min(chain.ttl, r.ttl)) });
      for (const rule of rules) learn.push({ address: c.data, rule, ttl: Math.min(chain.ttl, r.ttl) });
    }
    if (offered > 0 && out.length === cnames.length)
      return { response: refusal(query, RCODE.REFUSED), learn: [], refused, reason: "every address is in a refused range" };
  } else {
    for (const r of upstream.answers)
      if (r.type === q.type && r.class === CLASS_IN && onChain.has(canonicalName(r.name))) out.push({ ...r, ttl: answeredTtl(r.ttl) });
  }
  return { response: answerTo(query, out), learn, refused };
}
