// Choosing subnets and bridge names for new networks, the way podman's
// GetFreeNetwork / GetFreeDeviceName do: walk a pool in order and take the
// first candidate no existing network (and no host route) overlaps.
//
// Pure: the caller passes what is in use.
import { type Family, type Subnet, parseCidr, subnetsOverlap, subnetToString } from "./ip.ts";

/** podman's default network, 10.88.0.0/16: never handed out, so podman and burrow can share a host. */
export const PODMAN_DEFAULT_SUBNET = "10.88.0.0/16";
/** slirp4netns's IPv6 network (enable_ipv6), inside the rootless netns too: never handed out. */
export const SLIRP4NETNS_IPV6_SUBNET = "fd00::/64";

const reserved: Subnet[] = [PODMAN_DEFAULT_SUBNET, SLIRP4NETNS_IPV6_SUBNET].map((s) => parseCidr(s)!.subnet);

/**
 * The IPv4 pool: 10.89.0.0/24, 10.89.1.0/24, ... 10.255.255.0/24 (podman v3
 * hands out 10.89.x.0/24 too). The IPv6 pool: fd00:0:0:1::/64,
 * fd00:0:0:2::/64, ... fd00:0:0:ffff::/64.
 */
function* pool(family: Family): Generator<Subnet> {
  if (family === 4) {
    for (let n = (10n << 24n) | (89n << 16n); n <= ((10n << 24n) | 0xffff00n); n += 256n) yield { family: 4, network: n, prefix: 24 };
    return;
  }
  const base = 0xfd00n << 112n;
  for (let i = 1n; i <= 0xffffn; i++) yield { family: 6, network: base | (i << 64n), prefix: 64 };
}

/** The first subnet of the pool that overlaps nothing in `used` (nor the reserved subnets); null if the pool is exhausted. */
export function pickFreeSubnet(family: Family, used: Subnet[]): Subnet | null {
  const avoid = [...reserved, ...used.filter((s) => s.family === family)];
  for (const candidate of pool(family)) {
    if (!avoid.some((u) => subnetsOverlap(candidate, u))) return candidate;
  }
  return null;
}

/** The first `${prefix}N` (N = 0, 1, ...) not in `taken`. */
export function pickFreeBridgeName(taken: Iterable<string>, prefix = "burrow"): string {
  const names = new Set(taken);
  for (let n = 0; ; n++) {
    const name = `${prefix}${n}`;
    if (!names.has(name)) return name;
  }
}

export { subnetToString };
