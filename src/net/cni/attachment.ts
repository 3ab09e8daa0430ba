// Building the per-sandbox side of a CNI call the way podman v3 (through
// ocicni's buildCNIRuntimeConf) does: CNI_ARGS with IgnoreUnknown=1, the
// K8S_POD_* names (dnsname registers K8S_POD_NAME), IP= and MAC= for --ip and
// --mac-address; capability args for published ports and aliases; and the
// eth0, eth1, ... interface name of each network.
//
// Pure: no system access.
import * as v from "valibot";
import { BurrowError } from "../../errors.ts";
import { describeIssues } from "./conflist.ts";
import { parseIp } from "./ip.ts";
import type { Attachment } from "./runtime.ts";

/** The portmap plugin's "portMappings" capability entry (ocicni's PortMapping). */
export const PortMappingSchema = v.object({
  hostPort: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)),
  containerPort: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)),
  protocol: v.picklist(["tcp", "udp", "sctp"]),
  hostIP: v.optional(v.string(), ""),
});
export type PortMapping = v.InferInput<typeof PortMappingSchema>;

const MAC_PATTERN = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

export interface AttachmentSpec {
  containerId: string;
  /** The sandbox's name: the K8S_POD_NAME (and namespace) dnsname registers in DNS. */
  containerName: string;
  netns: string;
  ifName: string;
  /** A static IP (--ip), passed as CNI_ARGS IP= (host-local honours it). */
  ip?: string;
  /** A static MAC (--mac-address), passed as CNI_ARGS MAC= (bridge/tuning honour it). */
  mac?: string;
  /** Published ports, for plugins with the portMappings capability (portmap). */
  portMappings?: PortMapping[];
  /** network name -> aliases, for plugins with the aliases capability (dnsname reads its own network's entry). */
  aliases?: Record<string, string[]>;
  /** Other capability args (e.g. ips, mac, bandwidth), passed as given to plugins declaring them. */
  capabilityArgs?: Record<string, unknown>;
}

/** ocicni's buildCNIRuntimeConf. */
export function buildAttachment(spec: AttachmentSpec): Attachment {
  const args: Array<[string, string]> = [
    ["IgnoreUnknown", "1"],
    ["K8S_POD_NAMESPACE", spec.containerName],
    ["K8S_POD_NAME", spec.containerName],
    ["K8S_POD_INFRA_CONTAINER_ID", spec.containerId],
  ];
  if (spec.ip !== undefined && spec.ip !== "") {
    if (!parseIp(spec.ip))
      throw new BurrowError(`invalid IP address ${JSON.stringify(spec.ip)}: expected an IPv4 or IPv6 address such as 10.89.0.5`, { kind: "bad-input" });
    args.push(["IP", spec.ip]);
  }
  if (spec.mac !== undefined && spec.mac !== "") {
    if (!MAC_PATTERN.test(spec.mac))
      throw new BurrowError(`invalid MAC address ${JSON.stringify(spec.mac)}: expected six hex pairs such as 92:d0:c6:0a:29:33`, { kind: "bad-input" });
    args.push(["MAC", spec.mac]);
  }
  const capabilityArgs: Record<string, unknown> = { ...spec.capabilityArgs };
  if (spec.portMappings && spec.portMappings.length > 0) {
    const parsed = v.safeParse(v.array(PortMappingSchema), spec.portMappings);
    if (!parsed.success) throw new BurrowError(`invalid port mapping: ${describeIssues(parsed.issues)}`, { kind: "bad-input" });
    capabilityArgs.portMappings = parsed.output;
  }
  if (spec.aliases && Object.keys(spec.aliases).length > 0) capabilityArgs.aliases = spec.aliases;
  return { containerId: spec.containerId, netns: spec.netns, ifName: spec.ifName, args, capabilityArgs };
}

/** The interface name of the network with index `i` (podman: eth0, eth1, ...). */
export const interfaceName = (index: number): string => `eth${index}`;

/**
 * `network connect`: the interface a sandbox's next network gets (the
 * lowest free eth<N>), whichever backend attaches it; refuses a network the
 * sandbox is on already.
 */
export function connectInterface(sandbox: string, attachments: Array<{ network: string; ifName: string }>, network: string): string {
  if (attachments.some((x) => x.network === network))
    throw new BurrowError(`sandbox ${sandbox} is already connected to network ${network}`, { kind: "bad-input" });
  const used = new Set(attachments.map((x) => x.ifName));
  let i = 0;
  while (used.has(interfaceName(i))) i++;
  return interfaceName(i);
}

/**
 * podman's ContainerNetworkDescriptions: network name -> interface index,
 * stable for the sandbox's life. Networks already present keep their index;
 * each new one gets the lowest free index (so a reconnect never collides).
 * Returns a new map.
 */
export function assignInterfaces(networks: string[], existing: Record<string, number> = {}): Record<string, number> {
  const out = { ...existing };
  const used = new Set(Object.values(out));
  for (const name of networks) {
    if (name in out) continue;
    let i = 0;
    while (used.has(i)) i++;
    out[name] = i;
    used.add(i);
  }
  return out;
}

/** `assignInterfaces` as names: network -> eth<N>. */
export function interfaceNames(networks: string[], existing: Record<string, number> = {}): Record<string, string> {
  const idx = assignInterfaces(networks, existing);
  return Object.fromEntries(networks.map((n) => [n, interfaceName(idx[n]!)]));
}
