// What goes into a sandbox's /etc/hosts and /etc/resolv.conf, per network
// mode. The builders (podman's formats) live in src/dns/.
import { readFileSync } from "node:fs";
import type { NetworkMode } from "../net/mode.ts";
import type { NetworkSetup } from "../net/backend.ts";
import { buildHosts, firstHostIPv4, readHostHosts, type HostsEntry } from "../dns/hosts.ts";
import { buildResolvConf, readHostResolvConf } from "../dns/resolvconf.ts";

export interface EtcInput {
  mode: NetworkMode;
  hostname: string;
  name: string;
  dns: string[];
  net?: Omit<NetworkSetup, "record">;
  /** Network aliases and peers to list (bridge networks). */
  extraHosts?: HostsEntry[];
  /** container:NAME shares the other sandbox's files, as podman does. */
  sharedDir?: string;
}

export function etcContent(input: EtcInput): { hosts: string; resolv: string } {
  if (input.sharedDir) {
    return { hosts: readFileSync(`${input.sharedDir}/hosts`, "utf8"), resolv: readFileSync(`${input.sharedDir}/resolv.conf`, "utf8") };
  }
  const host = input.mode.kind === "host";
  const hosts = host
    ? readHostHosts()
    : buildHosts({
        hostContent: readHostHosts(),
        hostname: input.hostname,
        name: input.name,
        address: input.net?.hostsAddress ?? input.net?.address ?? null,
        // podman adds host.containers.internal only when the sandbox has a
        // network that can reach the host.
        hostAddress: input.mode.kind === "none" ? null : firstHostIPv4(),
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
