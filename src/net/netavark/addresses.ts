// Addresses for a sandbox on a netavark network. netavark's host-local IPAM
// allocates nothing: its caller passes static_ips (podman keeps its
// allocations in ipam.db). This is burrow's side of that: one address per
// subnet of the network, as podman gives, either the user's --ip checked
// against the subnets (netavark 1.17 takes an address outside every subnet
// and fails half-way, measured), or the free one podman's allocator would
// reach last. podman hands out addresses from its ipam.db alone, which
// lists none of burrow's: from the one after the subnet's `lastIP` upwards,
// wrapping at the range's end (from the range's start on a new network). A
// sandbox picked from the bottom took the very address podman gave its next
// container on a shared rootful bridge (measured with podman 5.8); picked
// in the reverse of podman's order, the two meet only once podman has gone
// round the whole range (docs/netavark.md).
//
// Pure: the caller passes the addresses already in use on the network.
import { BurrowError } from "../../errors.ts";
import { quote } from "../../quote.ts";
import { formatIp, type IpAddress, ipToString, lastAddress, parseCidr, parseIp, type Subnet, subnetContains } from "../cni/ip.ts";
import type { NetworkFile } from "./schema.ts";

interface Pool {
  subnet: Subnet;
  gateway: IpAddress | null;
  first: bigint;
  last: bigint;
}

/** Each subnet's usable range: lease_range when given, else the subnet minus network and broadcast addresses. */
function pools(network: NetworkFile): Pool[] {
  return (network.subnets ?? []).map((s) => {
    const subnet = parseCidr(s.subnet)!.subnet;
    const gateway = s.gateway ? parseIp(s.gateway) : null;
    // IPv4 keeps its broadcast address out; IPv6 has none, but podman skips the last one too.
    let first = subnet.network + 1n;
    let last = lastAddress(subnet) - 1n;
    const start = s.lease_range?.start_ip ? parseIp(s.lease_range.start_ip) : null;
    const end = s.lease_range?.end_ip ? parseIp(s.lease_range.end_ip) : null;
    // Never the network or the last address, whatever the range says: podman
    // writes a CIDR range's last address as its end (10.89.5.255 for .128/25).
    if (start && subnetContains(subnet, start) && start.value > first) first = start.value;
    if (end && subnetContains(subnet, end) && end.value < last) last = end.value;
    return { subnet, gateway, first, last };
  });
}

/** Each address with the subnet that holds it, as the network file writes it (podman's ipam.db names its buckets so). */
export function subnetsOf(network: NetworkFile, ips: readonly string[]): Array<{ ip: string; subnet: string }> {
  const all = pools(network).map((pool, i) => ({ pool, text: network.subnets![i]!.subnet }));
  return ips.flatMap((ip) => {
    const addr = parseIp(ip);
    const hit = addr ? all.find((x) => subnetContains(x.pool.subnet, addr)) : undefined;
    return hit ? [{ ip, subnet: hit.text }] : [];
  });
}

function bad(message: string): BurrowError {
  return new BurrowError(message, { kind: "bad-input" });
}

const IP_RANGE_FORMS = "a CIDR range such as 10.89.5.128/25 or START-END such as 10.89.5.10-10.89.5.20";

/**
 * `network create --ip-range` as podman 5 takes it: a CIDR range, stored as
 * its first host to its last address (what podman 4 and 5 write), or
 * START-END (podman 5), inside one of `subnets` (the --subnet values).
 * Returns that subnet's index and the lease range to write there.
 */
export function leaseRangeOf(text: string, subnets: string[]): { index: number; start: string; end: string } {
  let start: IpAddress | null;
  let end: IpAddress | null;
  if (text.includes("/")) {
    const cidr = parseCidr(text);
    if (!cidr) throw bad(`invalid --ip-range ${quote(text)}: ${IP_RANGE_FORMS}`);
    start = { family: cidr.subnet.family, value: cidr.subnet.network + 1n };
    end = { family: cidr.subnet.family, value: lastAddress(cidr.subnet) };
    if (start.value > end.value) throw bad(`invalid --ip-range ${quote(text)}: it holds no address to hand out; ${IP_RANGE_FORMS}`);
  } else {
    const parts = text.split("-");
    start = parts.length === 2 ? parseIp(parts[0]!) : null;
    end = parts.length === 2 ? parseIp(parts[1]!) : null;
    if (!start || !end) throw bad(`invalid --ip-range ${quote(text)}: ${IP_RANGE_FORMS}`);
    if (start.family !== end.family || start.value > end.value)
      throw bad(`invalid --ip-range ${quote(text)}: START and END of one family, START first; ${IP_RANGE_FORMS}`);
  }
  const index = subnets.findIndex((s) => {
    const subnet = parseCidr(s)?.subnet;
    return !!subnet && subnetContains(subnet, start) && subnetContains(subnet, end);
  });
  if (index < 0) throw bad(`--ip-range ${quote(text)} is not inside ${subnets.length ? `subnet ${subnets.join(" or ")}` : "any subnet: give --subnet too"}`);
  return { index, start: ipToString(start), end: ipToString(end) };
}

/**
 * The addresses for a sandbox on `network`: `requested` (the --ip values,
 * each in one of its subnets) plus, in every subnet no requested address
 * covers, the free address podman would hand out last: counting down from
 * podman's `lastIP` there (`podmanLast`, from its ipam.db) to the range's
 * start, then from the range's end; from the range's end when podman has
 * none. `used` are the addresses other sandboxes and containers hold
 * there. A network without subnets (IPAM none) gets none.
 */
export function pickAddresses(network: NetworkFile, used: string[], requested: string[] = [], podmanLast: string[] = []): string[] {
  const all = pools(network);
  const taken = new Set(
    used
      .map((u) => parseIp(u))
      .filter((ip): ip is IpAddress => ip !== null)
      .map(ipToString),
  );
  const out: string[] = [];
  const covered = new Set<Pool>();
  for (const text of requested) {
    const ip = parseIp(text);
    if (!ip) throw bad(`invalid IP address ${quote(text)}`);
    const pool = all.find((p) => subnetContains(p.subnet, ip));
    const subnets = all.map((p) => `${formatIp(p.subnet.family, p.subnet.network)}/${p.subnet.prefix}`).join(", ");
    if (!pool) throw bad(`IP address ${ipToString(ip)} is not in a subnet of network ${network.name} (${subnets || "it has none"})`);
    if (covered.has(pool)) throw bad(`two IP addresses for one subnet of network ${network.name}: ${text}`);
    if (ip.value === pool.subnet.network || (ip.family === 4 && ip.value === lastAddress(pool.subnet))) {
      throw bad(`IP address ${ipToString(ip)} is the network or broadcast address of network ${network.name}`);
    }
    if (pool.gateway && pool.gateway.value === ip.value) throw bad(`IP address ${ipToString(ip)} is the gateway of network ${network.name}`);
    if (taken.has(ipToString(ip))) throw new BurrowError(`IP address ${ipToString(ip)} is already allocated on network ${network.name}`, { kind: "in-use" });
    covered.add(pool);
    out.push(ipToString(ip));
  }
  const lastIps = podmanLast.map((t) => parseIp(t)).filter((ip): ip is IpAddress => ip !== null);
  for (const pool of all) {
    if (covered.has(pool)) continue;
    const last = lastIps.find((ip) => ip.family === pool.subnet.family && ip.value >= pool.first && ip.value <= pool.last);
    // podman's order is from (lastIP or the start's predecessor) + 1 up, wrapping: burrow walks it backwards.
    const turn = last ? last.value : pool.first - 1n;
    let found: string | null = null;
    for (let i = 0n, size = pool.last - pool.first + 1n; i < size; i++) {
      const v = turn - i >= pool.first ? turn - i : turn - i + size;
      if (pool.gateway && pool.gateway.value === v) continue;
      const text = formatIp(pool.subnet.family, v);
      if (!taken.has(text)) {
        found = text;
        break;
      }
    }
    if (!found)
      throw new BurrowError(
        `no free IP address left in ${formatIp(pool.subnet.family, pool.subnet.network)}/${pool.subnet.prefix} of network ${network.name}`,
        { kind: "in-use" },
      );
    out.push(found);
  }
  return out;
}
