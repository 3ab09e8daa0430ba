// IPv4/IPv6 address and subnet arithmetic for network configs: parse, print
// (Go's net.IP.String() forms, which podman writes into conflists), compare.
// Addresses are bigints so one code path serves both families.
//
// Pure: no system access.
import { isIPv4, isIPv6 } from "../../ip-syntax.ts";

export type Family = 4 | 6;

export interface IpAddress {
  family: Family;
  value: bigint;
}

/** A subnet in canonical form: `network` has no host bits set. */
export interface Subnet {
  family: Family;
  network: bigint;
  prefix: number;
}

export const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

export function parseIp(text: string): IpAddress | null {
  if (isIPv4(text)) {
    const value = text.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
    return { family: 4, value };
  }
  if (!isIPv6(text)) return null;
  let s = text.toLowerCase();
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = parseIp(v4[1]!)!.value;
    s = `${s.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array(missing).fill("0"), ...tailGroups];
  if (groups.length !== 8) return null;
  const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  return { family: 6, value };
}

/** Go's net.IP.String(): dotted quad, or RFC 5952 compressed IPv6. */
export function formatIp(family: Family, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt((7 - i) * 16)) & 0xffffn));
  // The longest run of two or more zero groups becomes "::" (the first one on a tie).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

export const ipToString = (ip: IpAddress): string => formatIp(ip.family, ip.value);

function maskOf(family: Family, prefix: number): bigint {
  const bits = bitsOf(family);
  const all = (1n << BigInt(bits)) - 1n;
  return (all >> BigInt(bits - prefix)) << BigInt(bits - prefix);
}

/**
 * `addr/prefix` as written (host bits allowed, like Go's net.ParseCIDR):
 * returns the address and its canonical subnet, or null if it is not a CIDR.
 */
export function parseCidr(text: string): { address: IpAddress; subnet: Subnet } | null {
  const slash = text.lastIndexOf("/");
  if (slash < 0) return null;
  const address = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!address || !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > bitsOf(address.family)) return null;
  return { address, subnet: { family: address.family, network: address.value & maskOf(address.family, prefix), prefix } };
}

export const subnetToString = (s: Subnet): string => `${formatIp(s.family, s.network)}/${s.prefix}`;

/** The canonical spelling of a CIDR ("10.1.2.3/24" -> "10.1.2.0/24"), or null. */
export function canonicalSubnet(text: string): string | null {
  const parsed = parseCidr(text);
  return parsed ? subnetToString(parsed.subnet) : null;
}

export function subnetContains(s: Subnet, ip: IpAddress): boolean {
  return s.family === ip.family && (ip.value & maskOf(s.family, s.prefix)) === s.network;
}

/** Whether two subnets share any address (one contains the other's network). */
export function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  if (a.family !== b.family) return false;
  const prefix = Math.min(a.prefix, b.prefix);
  const mask = maskOf(a.family, prefix);
  return (a.network & mask) === (b.network & mask);
}

export function lastAddress(s: Subnet): bigint {
  return s.network | (~maskOf(s.family, s.prefix) & ((1n << BigInt(bitsOf(s.family))) - 1n));
}

/** podman's FirstIPInSubnet: the network address + 1 (also the default gateway). */
export function firstHost(s: Subnet): IpAddress {
  return { family: s.family, value: s.network + 1n };
}

/** podman's LastIPInSubnet: the broadcast (last) address - 1. */
export function lastHost(s: Subnet): IpAddress {
  return { family: s.family, value: lastAddress(s) - 1n };
}

/** The prefix length of a contiguous netmask (0xffffff00 -> 24). */
export function prefixFromMask(family: Family, mask: bigint): number {
  let prefix = 0;
  for (let bit = bitsOf(family) - 1; bit >= 0 && (mask >> BigInt(bit)) & 1n; bit--) prefix++;
  return prefix;
}
