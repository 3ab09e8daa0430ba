// What goes into a sandbox's /etc/hosts and /etc/resolv.conf. The network
// backend says which policy applies (NetworkBackend.etc) and what its
// network adds (DnsView); the builders (podman's formats) are beside this.
import { readFileSync } from "node:fs";
import { buildHosts, firstHostIPv4, readHostHosts, type HostsEntry } from "./hosts.ts";
import { buildResolvConf, readHostResolvConf } from "./resolvconf.ts";
import { helperConf } from "../machine/helpers.ts";

/**
 * - `host`: the host's own files (--network host);
 * - `isolated`: the sandbox's name, no host.containers.internal (nothing to reach it by);
 * - `network`: the sandbox's name and address, host.containers.internal, the backend's nameservers;
 * - `shared`: a copy of another sandbox's files (container:NAME, as podman does).
 */
export type EtcPolicy = "host" | "isolated" | "network" | "shared";

/** What a network adds to the files; every field optional. */
export interface DnsView {
  /** The sandbox's own address on its primary network (port forwarding target). */
  address?: string;
  /** Nameservers to list first in resolv.conf. */
  nameservers?: string[];
  /** Address /etc/hosts maps the hostname to. */
  hostsAddress?: string;
  /** Search domains to add to resolv.conf. */
  searchDomains?: string[];
  /** Keep IPv6 nameservers of the host (the sandbox has IPv6). */
  ipv6?: boolean;
  /** The sandbox's own IPv6 address on its primary network, where it is fixed (bridge networks with an IPv6 subnet). */
  address6?: string;
  gateway?: string;
  prefixLength?: number;
  /** The address this network gives the host (pasta's mapped guest address); else the host's first address. */
  hostContainersInternal?: string;
  /**
   * Host addresses that are not the host from this network (pasta copies the
   * host's own into the namespace bridge networks live in): podman 5.3 skips
   * them when it takes the host's first address.
   */
  hostAddressesInside?: string[];
}

export interface EtcInput {
  policy: EtcPolicy;
  hostname: string;
  name: string;
  dns: string[];
  net?: DnsView;
  /** Network aliases and peers to list (bridge networks). */
  extraHosts?: HostsEntry[];
  /** The directory whose files `shared` copies. */
  sharedDir?: string;
  /** containers.conf host_containers_internal_ip ("none": no entry); default: read from containers.conf. */
  hostContainersInternalIp?: string;
}

/**
 * host.containers.internal as podman 5.3+ resolves it: containers.conf
 * host_containers_internal_ip ("none" leaves the entry out), else the
 * address the network maps to the host (pasta's --map-guest-addr), else the
 * host's first non-loopback IPv4 address. null: no entry.
 */
export function hostContainersInternal(
  conf: string | undefined,
  net: DnsView | undefined,
  hostIPv4: (exclude: readonly string[]) => string | null = (exclude) => firstHostIPv4(undefined, exclude),
): string | null {
  if (conf === "none") return null;
  return conf || net?.hostContainersInternal || hostIPv4(net?.hostAddressesInside ?? []);
}

export function etcContent(input: EtcInput): { hosts: string; resolv: string } {
  if (input.policy === "shared" && input.sharedDir) {
    return { hosts: readFileSync(`${input.sharedDir}/hosts`, "utf8"), resolv: readFileSync(`${input.sharedDir}/resolv.conf`, "utf8") };
  }
  const host = input.policy === "host";
  const hosts = host
    ? readHostHosts()
    : buildHosts({
        hostContent: readHostHosts(),
        hostname: input.hostname,
        name: input.name,
        address: input.net?.hostsAddress ?? input.net?.address ?? null,
        // podman adds host.containers.internal only when the sandbox has a
        // network that can reach the host.
        hostAddress:
          input.policy === "isolated" ? null : hostContainersInternal(input.hostContainersInternalIp ?? helperConf().hostContainersInternalIp, input.net),
        extra: input.extraHosts,
      });
  const hostResolv = readHostResolvConf();
  const resolv = host
    ? buildResolvConf({ hostContent: hostResolv.content, dns: input.dns, ipv6: true }).content
    : buildResolvConf({
        hostContent: hostResolv.content,
        firstNameservers: input.net?.nameservers,
        dns: input.dns,
        dnsSearch: input.net?.searchDomains,
        ipv6: input.net?.ipv6 ?? false,
      }).content;
  return { hosts, resolv };
}
