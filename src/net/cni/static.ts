// --ip, --mac-address and --network-alias checked before any plugin runs
// (issue 10 item 6): the bridge and host-local plugins caught a bad MAC or
// an address outside the subnet only after the namespaces were made, in
// their own words. Pure: the network is passed in.
import { BurrowError } from "../../errors.ts";
import { quote } from "../../quote.ts";
import { firstHost, ipToString, lastHost, parseCidr, parseIp, subnetContains, subnetToString, type IpAddress } from "./ip.ts";
import type { Network } from "./networks.ts";

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** A static MAC must be six hex pairs and unicast (the low bit of the first octet clear), not all zero. */
export function checkMac(mac: string): void {
  if (!MAC.test(mac)) throw new BurrowError(`invalid MAC address ${quote(mac)}: expected six hex pairs such as 92:d0:c6:0a:29:33`, { kind: "bad-input" });
  const first = parseInt(mac.slice(0, 2), 16);
  if (first & 1)
    throw new BurrowError(
      `invalid MAC address ${quote(mac)}: it is a multicast or broadcast address; give a unicast one (the first octet even), such as 92:d0:c6:0a:29:33`,
      { kind: "bad-input" },
    );
  if (/^(00:){5}00$/.test(mac)) throw new BurrowError(`invalid MAC address ${quote(mac)}: the all-zero address cannot be assigned`, { kind: "bad-input" });
}

/** Like a hostname: dot-separated labels of 1-63 letters, digits, "-" or "_", not starting or ending with "-"; 253 in all. */
export function checkAlias(alias: string): void {
  const labels = alias.split(".");
  const ok =
    alias.length > 0 && alias.length <= 253 && labels.every((l) => l.length >= 1 && l.length <= 63 && /^[a-zA-Z0-9_]([a-zA-Z0-9_-]*[a-zA-Z0-9_])?$/.test(l));
  if (!ok)
    throw new BurrowError(
      `invalid network alias ${quote(alias)}: use a hostname (dot-separated labels of at most 63 letters, digits, "-" or "_", 253 characters in all)`,
      { kind: "bad-input" },
    );
}

/**
 * A static address must lie in one of the network's subnets (within its
 * range when it has one), and be neither the network or broadcast address
 * nor the gateway.
 */
export function checkStaticIp(ip: string, net: Network): void {
  const addr = parseIp(ip);
  if (!addr) throw new BurrowError(`invalid IP address ${quote(ip)}: expected an IPv4 or IPv6 address such as 10.89.0.5`, { kind: "bad-input" });
  const ranges = net.subnets.flatMap((r) => {
    const parsed = parseCidr(r.subnet);
    return parsed ? [{ r, subnet: parsed.subnet }] : [];
  });
  const hit = ranges.find((x) => subnetContains(x.subnet, addr));
  const where = ranges.map((x) => subnetToString(x.subnet)).join(" or ") || "no subnet";
  if (!hit) throw new BurrowError(`--ip ${quote(ip)} is not in network ${net.name}'s subnet (${where})`, { kind: "bad-input" });
  const start = hit.r.rangeStart ? parseIp(hit.r.rangeStart) : firstHost(hit.subnet);
  const end = hit.r.rangeEnd
    ? parseIp(hit.r.rangeEnd)
    : addr.family === 4
      ? lastHost(hit.subnet)
      : { family: 6 as const, value: lastHost(hit.subnet).value + 1n };
  const inRange = (a: IpAddress) => (!start || a.value >= start.value) && (!end || a.value <= end.value);
  if (!inRange(addr))
    throw new BurrowError(
      `--ip ${quote(ip)} is outside network ${net.name}'s address range ${start ? ipToString(start) : "?"}-${end ? ipToString(end) : "?"} (subnet ${subnetToString(hit.subnet)})`,
      { kind: "bad-input" },
    );
  // host-local's default gateway is the first host.
  const gateway = hit.r.gateway ? parseIp(hit.r.gateway) : firstHost(hit.subnet);
  if (gateway?.value === addr.value)
    throw new BurrowError(`--ip ${quote(ip)} is network ${net.name}'s gateway; choose another address in ${subnetToString(hit.subnet)}`, { kind: "bad-input" });
}

/** All three, for a create or connect on `net` (the first network of a create). */
export function checkStaticAddressing(net: Network | undefined, opts: { ip?: string; mac?: string; aliases?: string[] }): void {
  for (const a of opts.aliases ?? []) checkAlias(a);
  if (opts.mac) checkMac(opts.mac);
  if (opts.ip && net) checkStaticIp(opts.ip, net);
}
