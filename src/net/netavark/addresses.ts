// Addresses for a sandbox on a netavark network. netavark's host-local IPAM
// allocates nothing: its caller passes static_ips (podman keeps its
// allocations in ipam.db). This is burrow's side of that: one address per
// subnet of the network, as podman gives, either the user's --ip checked
// against the subnets (netavark 1.17 takes an address outside every subnet
// and fails half-way, measured), or the first free one.
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
    if (start && subnetContains(subnet, start)) first = start.value;
    if (end && subnetContains(subnet, end)) last = end.value;
    return { subnet, gateway, first, last };
  });
}

function bad(message: string): BurrowError {
  return new BurrowError(message, { kind: "bad-input" });
}

/**
 * The addresses for a sandbox on `network`: `requested` (the --ip values,
 * each in one of its subnets) plus the first free address of every subnet
 * no requested address covers. `used` are the addresses other sandboxes and
 * containers hold there. A network without subnets (IPAM none) gets none.
 */
export function pickAddresses(network: NetworkFile, used: string[], requested: string[] = []): string[] {
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
  for (const pool of all) {
    if (covered.has(pool)) continue;
    let found: string | null = null;
    for (let v = pool.first; v <= pool.last; v++) {
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
