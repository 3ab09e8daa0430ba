// What the caller's network namespace already uses, so a new network avoids
// it: routed subnets (/proc/net/route, /proc/net/ipv6_route) and interface
// names (/sys/class/net). /proc/net and /sys/class/net describe the network
// namespace of the calling thread: call these from the host namespace (the
// daemon's main thread).
import { readdirSync, readFileSync } from "node:fs";
import { endianness } from "node:os";
import { type Subnet, prefixFromMask } from "./ip.ts";

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Parses /proc/net/route: hex fields are native-endian u32s of network-order bytes. */
export function parseProcRoute(text: string, littleEndian = endianness() === "LE"): Subnet[] {
  const hexToIp = (hex: string): bigint => {
    const n = BigInt(parseInt(hex, 16) >>> 0);
    if (!littleEndian) return n;
    return ((n & 0xffn) << 24n) | (((n >> 8n) & 0xffn) << 16n) | (((n >> 16n) & 0xffn) << 8n) | ((n >> 24n) & 0xffn);
  };
  const out: Subnet[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^[0-9A-Fa-f]{8}$/.test(f[1]!) || !/^[0-9A-Fa-f]{8}$/.test(f[7]!)) continue;
    const prefix = prefixFromMask(4, hexToIp(f[7]!));
    // A default route covers everything; it says nothing about what is in use.
    if (prefix === 0) continue;
    out.push({ family: 4, network: hexToIp(f[1]!), prefix });
  }
  return out;
}

/** Parses /proc/net/ipv6_route (all routing tables, so local /128s too). */
export function parseProcIpv6Route(text: string): Subnet[] {
  const out: Subnet[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const prefix = parseInt(f[1]!, 16);
    const network = BigInt(`0x${f[0]}`);
    // Skip default, link-local and multicast routes: every host has them.
    if (prefix === 0 || network >> 118n === 0x3fan || network >> 120n === 0xffn) continue;
    out.push({ family: 6, network, prefix });
  }
  return out;
}

/** Subnets routed in the calling thread's network namespace (default routes excluded). */
export function readHostRoutes(): Subnet[] {
  return [...parseProcRoute(readText("/proc/net/route")), ...parseProcIpv6Route(readText("/proc/net/ipv6_route"))];
}

/** Interface names in the calling thread's network namespace. */
export function readInterfaceNames(): string[] {
  try {
    return readdirSync("/sys/class/net");
  } catch {
    return [];
  }
}
