// The client's own address behind a published TCP port (issue 15 item 3),
// for the builtin forwarder's connector Worker.
//
// Without it the sandbox's server sees every client as the forwarder: the
// connector's socket in the sandbox's netns has the sandbox's own address.
// With it the connector's socket is IP_TRANSPARENT, bound to the client's
// address and port, and marked CLIENT_MARK (SO_MARK). Replies to that
// address would leave by the sandbox's default route (slirp4netns's tap, the
// bridge) and never come back, so the sandbox's netns gets, once:
//
//   net.ipv4.tcp_fwmark_accept=1    the server's accepted socket inherits the
//                                   SYN's mark, so all its replies carry it
//   ip rule fwmark CLIENT_MARK lookup CLIENT_TABLE
//   ip route local 0.0.0.0/0 dev lo table CLIENT_TABLE  (and ::/0 with IPv6)
//
// Marked replies are then delivered locally, to the connector's transparent
// socket. RootlessKit's --source-ip-transparent (v3) tags connections with
// iptables CONNMARK instead, because its dialing socket is unmarked and it
// also serves DNAT'd targets; burrow always connects to the sandbox's own
// address from inside its netns, so SO_MARK on the socket is enough and no
// iptables is needed in the sandbox.
//
// Who may do this: IP_TRANSPARENT, SO_MARK, the rule, the route and the
// sysctl all need CAP_NET_ADMIN over the sandbox's netns, i.e. in the user
// namespace that owns it. The connector Worker has it: it is a thread of
// the daemon, which runs as uid 0 of the session holder's user namespace
// (rootful: real root), and every sandbox netns burrow makes belongs to that
// user namespace. Nothing else gets a capability: the sandbox's command keeps
// its own set (no NET_ADMIN by default), and nothing is done in the host's
// netns.
//
// Loopback clients keep today's path: a loopback source cannot be used in
// another netns. UDP keeps it too (docs/decisions.md: the client's address
// for published ports).
import { AF_INET, AF_INET6 } from "../sys/net.ts";
import { addLocalDelivery, enableTcpFwmarkAccept } from "../sys/netlink.ts";
import { isLoopbackSockaddr, sockaddrFamily, unmappedSockaddr } from "../sys/netio.ts";
import type { SourceAddress } from "./connector-protocol.ts";

/** "bu": the mark and table number of burrow's client-address connections inside a sandbox's netns. */
export const CLIENT_MARK = 0x6275;
export const CLIENT_TABLE = 0x6275;
/** Before the main table (32766), after local (0). */
const RULE_PRIORITY = 100;

/**
 * Runs in the sandbox's netns (on the connector Worker): sets up the policy
 * routing above. Idempotent (a daemon restart or a second port finds it
 * there). IPv6 is only asked for when the sandbox has IPv6.
 */
export function prepareClientAddressRouting(ipv6: boolean): SourceAddress {
  try {
    enableTcpFwmarkAccept();
    addLocalDelivery({ family: AF_INET, mark: CLIENT_MARK, table: CLIENT_TABLE, priority: RULE_PRIORITY });
    if (ipv6) addLocalDelivery({ family: AF_INET6, mark: CLIENT_MARK, table: CLIENT_TABLE, priority: RULE_PRIORITY });
    return { sourceAddress: "client" };
  } catch (e) {
    return { sourceAddress: "forwarder", why: `cannot set up the sandbox's reply routing: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/**
 * The address a connection from `peer` (the accepted socket's peer) goes
 * into the sandbox with, or null for today's path: loopback clients, and
 * clients whose family the sandbox's target does not have.
 */
export function clientSource(peer: Uint8Array, targetFamily: number): Uint8Array | null {
  if (peer.length === 0) return null;
  // Unmapped once: isLoopbackSockaddr would unmap (a copy) again.
  const from = unmappedSockaddr(peer);
  return !isLoopbackSockaddr(from) && sockaddrFamily(from) === targetFamily ? from : null;
}

export function familyOf(host: string): number {
  return host.includes(":") ? AF_INET6 : AF_INET;
}
