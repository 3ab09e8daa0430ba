// From a CNI result to the fields podman prints under NetworkSettings
// (define.InspectBasicNetworkConfig / InspectAdditionalNetwork), following
// podman v3's resultToBasicNetworkConfig (seeds/podman-v3-networking_linux.go)
// case for case, including its IPv6 rule: an IPv6 address is "global" only
// while no IPv4 address has been seen; after one it is secondary. So a
// dual-stack result (IPv4 listed first, as host-local does) shows its IPv6
// address in SecondaryIPv6Addresses, as podman v3 does.
//
// One deliberate difference: a missing gateway prints as "" (Go's nil
// net.IP prints "<nil>").
//
// Pure: no system access.
import { BurrowError } from "../../errors.ts";
import { formatIp, parseCidr } from "./ip.ts";
import type { CniResult } from "./result.ts";

export interface InspectBasicNetworkConfig {
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  SecondaryIPAddresses?: string[];
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  SecondaryIPv6Addresses?: string[];
  MacAddress: string;
  AdditionalMACAddresses?: string[];
}

export interface InspectAdditionalNetwork extends InspectBasicNetworkConfig {
  /** podman v3 puts the network's name here. */
  NetworkID: string;
  Aliases?: string[];
}

/** podman's resultToBasicNetworkConfig. */
export function resultToBasicNetworkConfig(result: CniResult): InspectBasicNetworkConfig {
  const config: InspectBasicNetworkConfig = {
    EndpointID: "",
    Gateway: "",
    IPAddress: "",
    IPPrefixLen: 0,
    IPv6Gateway: "",
    GlobalIPv6Address: "",
    GlobalIPv6PrefixLen: 0,
    MacAddress: "",
  };
  const secondary4: string[] = [];
  const secondary6: string[] = [];
  const additionalMacs: string[] = [];
  const macOf = (index: number | undefined): string | undefined =>
    index !== undefined && index >= 0 && index < result.interfaces.length ? (result.interfaces[index]!.mac ?? "") : undefined;

  for (const ip of result.ips) {
    const parsed = parseCidr(ip.address);
    if (!parsed) throw new BurrowError(`CNI result has an invalid address ${JSON.stringify(ip.address)}`, { kind: "cni-result" });
    const address = formatIp(parsed.address.family, parsed.address.value);
    const withPrefix = `${address}/${parsed.subnet.prefix}`;
    const gateway = ip.gateway ?? "";
    if (ip.version === "4" && config.IPAddress === "") {
      config.IPAddress = address;
      config.IPPrefixLen = parsed.subnet.prefix;
      config.Gateway = gateway;
      const mac = macOf(ip.interface);
      if (mac !== undefined) config.MacAddress = mac;
    } else if (ip.version === "4") {
      secondary4.push(withPrefix);
      const mac = macOf(ip.interface);
      if (mac !== undefined) additionalMacs.push(mac);
    } else if (ip.version === "6" && config.IPAddress === "") {
      config.GlobalIPv6Address = address;
      config.GlobalIPv6PrefixLen = parsed.subnet.prefix;
      config.IPv6Gateway = gateway;
    } else if (ip.version === "6") {
      secondary6.push(withPrefix);
    } else {
      throw new BurrowError(`CNI result has an unrecognized IP version ${JSON.stringify(ip.version)}`, { kind: "cni-result" });
    }
  }
  // Same key order as podman's struct; empty lists are left out (omitempty).
  return {
    EndpointID: config.EndpointID,
    Gateway: config.Gateway,
    IPAddress: config.IPAddress,
    IPPrefixLen: config.IPPrefixLen,
    ...(secondary4.length ? { SecondaryIPAddresses: secondary4 } : {}),
    IPv6Gateway: config.IPv6Gateway,
    GlobalIPv6Address: config.GlobalIPv6Address,
    GlobalIPv6PrefixLen: config.GlobalIPv6PrefixLen,
    ...(secondary6.length ? { SecondaryIPv6Addresses: secondary6 } : {}),
    MacAddress: config.MacAddress,
    ...(additionalMacs.length ? { AdditionalMACAddresses: additionalMacs } : {}),
  };
}

/** One entry of NetworkSettings.Networks: podman's getContainerNetworkInfo for a CNI network. */
export function inspectNetworkEntry(networkName: string, result: CniResult, aliases: string[] = []): InspectAdditionalNetwork {
  return {
    NetworkID: networkName,
    ...(aliases.length ? { Aliases: [...aliases] } : {}),
    ...resultToBasicNetworkConfig(result),
  };
}
