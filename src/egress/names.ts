// DNS names in egress rules (docs/egress.md "Names"): which names a user may
// write in --allow-host, whether a name asked by the sandbox matches one, and
// which addresses of an upstream answer belong to the asked name (its CNAME
// chain). Pure: no system access.
//
// Names are compared in their presentation form, lower-cased, without the
// trailing dot. dns-message.ts escapes every byte outside [a-z0-9-_] in a
// label (`\.`, `\DDD`), so a name with an escape never matches a pattern:
// one wire name has exactly one text form, and no label can smuggle a dot.
import { quote } from "../quote.ts";

/** One label: letters, digits, hyphen and underscore (`_service` names), 1-63 characters. */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** RFC 1035: 255 octets on the wire, so 253 characters of text without the trailing dot. */
const MAX_NAME = 253;

/** The form names are compared in: lower case, no trailing dot. */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") && lower !== "." ? lower.slice(0, -1) : lower;
}

/** Why `name` is not a host name a rule may hold, or null when it is one. */
export function hostNameProblem(name: string): string | null {
  if (name === "" || name === ".") return "an empty name";
  if (name.length > MAX_NAME) return `longer than ${MAX_NAME} characters`;
  const labels = name.split(".");
  const bad = labels.find((l) => !LABEL.test(l));
  if (bad !== undefined)
    return bad === "" ? "an empty label" : `the label ${quote(bad)} (letters, digits, '-' and '_' only, 1-63 characters, no '-' at either end)`;
  // RFC 3696 2: a top-level domain is never all digits; this also keeps 10.1.2.3 out.
  if (/^\d+$/.test(labels[labels.length - 1]!)) return "an address, not a name (use --allow-cidr)";
  return null;
}

export interface HostPattern {
  /** Canonical: lower case, no trailing dot, `*.` kept. */
  pattern: string;
  /** The name below `*.`, or the whole name for an exact pattern. */
  base: string;
  wildcard: boolean;
}

/**
 * A --allow-host value as a pattern, or the reason it is not one. `*.` is
 * allowed only as the whole first label, and only above two labels at least
 * (`*.com` would be nearly everything; `*.co.uk` is not caught: burrow keeps
 * no public suffix list).
 */
export function parseHostPattern(text: string): HostPattern | string {
  const pattern = canonicalName(text);
  if (pattern === "*") return "'*' alone would be every name; to reach every address, give --allow-cidr 0.0.0.0/0 and --allow-cidr ::/0";
  const wildcard = pattern.startsWith("*.");
  const base = wildcard ? pattern.slice(2) : pattern;
  if (base.includes("*")) return "'*' only as the whole first label, as in *.example.com";
  const problem = hostNameProblem(base);
  if (problem) return problem;
  if (wildcard && base.split(".").length < 2) return "a wildcard needs at least two labels after '*.' (as in *.example.com)";
  return { pattern, base, wildcard };
}

/**
 * Whether the asked `name` matches `p`: exactly, or for `*.base` any name
 * one or more labels below base (not base itself). Case and a trailing dot
 * do not matter; a name that is not a plain host name (escapes, empty
 * labels) never matches.
 */
export function nameMatches(p: HostPattern, name: string): boolean {
  const n = canonicalName(name);
  if (hostNameProblem(n) !== null) return false;
  return p.wildcard ? n.endsWith(`.${p.base}`) : n === p.base;
}

/** Indexes of the patterns that match `name` (in rule order), empty when none. */
export function matchingPatterns(patterns: readonly HostPattern[], name: string): number[] {
  return patterns.flatMap((p, i) => (nameMatches(p, name) ? [i] : []));
}

export interface ChainRecord {
  name: string;
  type: "A" | "AAAA" | "CNAME";
  /** An address for A/AAAA, the target name for CNAME. */
  data: string;
  ttl: number;
}

/** The longest CNAME chain followed: resolvers stop at 8-16 too (BIND: 16, Unbound: 11). */
export const MAX_CHAIN = 8;

export interface Chain {
  /** The names from the asked one to the last CNAME target, canonical. */
  names: string[];
  /** The A/AAAA records of the chain's last name, in answer order. */
  addresses: ChainRecord[];
  /** The smallest TTL along the chain and the address: how long the answer as a whole holds. */
  ttl: number;
  /** Records of the answer that are not on the chain (ignored, never learned). */
  strays: number;
}

/**
 * Follows the CNAME chain of an answer from the asked `qname`: only records
 * owned by a name on the chain count, so an answer cannot slip in addresses
 * for another name. Returns the reason instead when the chain loops, forks
 * or is longer than MAX_CHAIN.
 *
 * The asked name decides whether an answer is given at all (see
 * docs/egress.md "CNAME chains"): a CDN's names at the end of a chain need
 * no rule of their own.
 */
export function followChain(qname: string, records: readonly ChainRecord[]): Chain | string {
  const names = [canonicalName(qname)];
  let ttl = Number.POSITIVE_INFINITY;
  const used = new Set<number>();
  for (;;) {
    const current = names[names.length - 1]!;
    const cnames = records.flatMap((r, i) => (r.type === "CNAME" && canonicalName(r.name) === current ? [i] : []));
    if (cnames.length > 1) return `${current} has ${cnames.length} CNAME records`;
    if (cnames.length === 0) break;
    const record = records[cnames[0]!]!;
    const target = canonicalName(record.data);
    if (names.includes(target)) return `the CNAME chain of ${names[0]} loops at ${target}`;
    if (names.length > MAX_CHAIN) return `the CNAME chain of ${names[0]} is longer than ${MAX_CHAIN}`;
    used.add(cnames[0]!);
    ttl = Math.min(ttl, record.ttl);
    names.push(target);
  }
  const last = names[names.length - 1]!;
  const addresses: ChainRecord[] = [];
  records.forEach((r, i) => {
    if ((r.type === "A" || r.type === "AAAA") && canonicalName(r.name) === last) {
      addresses.push(r);
      used.add(i);
    }
  });
  for (const a of addresses) ttl = Math.min(ttl, a.ttl);
  return { names, addresses, ttl: Number.isFinite(ttl) ? ttl : 0, strays: records.length - used.size };
}
