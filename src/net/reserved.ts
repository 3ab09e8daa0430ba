// Address ranges a sandbox network must never use (issue 10 item 6): a
// subnet or cidr= overlapping one of them would shadow the loopback, route
// multicast, or collide with slirp4netns's own addresses (its gateway, DNS
// and host-loopback addresses live in 10.0.2.0/24, the network the bridge
// networks' shared slirp4netns uses). Pure.
import { parseCidr, subnetToString, subnetsOverlap, type Subnet } from "./cni/ip.ts";

interface Reserved {
  subnet: Subnet;
  what: string;
}

const range = (cidr: string, what: string): Reserved => ({ subnet: parseCidr(cidr)!.subnet, what });

/** Reserved for every use: loopback, "this network", link-local, multicast, broadcast. */
const ALWAYS: Reserved[] = [
  range("0.0.0.0/8", 'the "this network" range'),
  range("127.0.0.0/8", "the loopback range"),
  range("169.254.0.0/16", "the link-local range"),
  range("224.0.0.0/4", "the multicast range"),
  range("240.0.0.0/4", "the reserved range (with the broadcast address)"),
  range("::/127", "the unspecified and loopback addresses"),
  range("fe80::/10", "the link-local range"),
  range("ff00::/8", "the multicast range"),
];

/** slirp4netns's internal network, where the bridge networks' shared slirp4netns lives. */
const SLIRP_INTERNAL = range("10.0.2.0/24", "slirp4netns's internal network (its gateway, DNS and host addresses)");

/**
 * Why `subnet` cannot be used, or null if it can. `slirpInternal`: also
 * refuse 10.0.2.0/24 (for bridge network subnets; a sandbox's own
 * slirp4netns cidr= is that very network by default).
 */
export function reservedOverlap(subnet: Subnet, opts: { slirpInternal: boolean }): string | null {
  const list = opts.slirpInternal ? [...ALWAYS, SLIRP_INTERNAL] : ALWAYS;
  const hit = list.find((r) => subnetsOverlap(r.subnet, subnet));
  return hit ? `it overlaps ${hit.what} ${subnetToString(hit.subnet)}` : null;
}
