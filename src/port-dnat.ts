// Which published ports a rootful bridge network's DNAT (CNI portmap,
// netavark) can serve. IPv6 has no route_localnet: the kernel will not route
// a packet from ::1, whose destination DNAT rewrote to the sandbox's
// address, out of loopback (it is dropped, and the client waits for its timeout:
// podman's behaviour, netavark #790, podman #26092). So a port published on
// [::1] only is left out of the plugins' mappings and served by the builtin
// forwarder instead (src/ports/portmap/driver.ts). Pure, and its own
// module because src/net and src/ports do not import each other: the
// network backends and the portmap driver both ask it.
import type { PortRecord } from "./state/sandboxes.ts";

/** Is this the IPv6 loopback address (any spelling)? */
export function isIPv6Loopback(ip: string): boolean {
  return /^(0{0,4}:){2,7}0{0,3}1$/i.test(ip) && ip.replace(/[:0]/g, "") === "1";
}

/** Can DNAT serve this port? Not when it is published on [::1] only. */
export function servedByDnat(p: Pick<PortRecord, "hostIp">): boolean {
  return !isIPv6Loopback(p.hostIp);
}

/**
 * The mappings the plugins get: not the [::1] ports, and `[::]` as every
 * address, IPv4 too, as burrow's rootless `[::]` is (netavark 1.4 turns
 * "::" into a rule for the destination ::/128, which matches nothing;
 * portmap and netavark 1.17 make it IPv6 only).
 */
export function dnatPorts<P extends Pick<PortRecord, "hostIp">>(ports: P[] | undefined): P[] {
  return (ports ?? []).filter(servedByDnat).map((p) => (/^[0:]+$/.test(p.hostIp) && p.hostIp.includes(":") ? { ...p, hostIp: "" } : p));
}
