// Netfilter netlink sockets (NETLINK_NETFILTER), the kernel's interface to
// nftables and NFLOG. Like every netlink socket, one belongs to the network
// namespace of the thread that made it, for its whole life: the daemon's
// connector thread makes a sandbox's while inside that sandbox's netns
// (src/ports/netns-hop.ts), and any thread can then use it from anywhere.
// Egress policy (docs/egress.md) is its user.
import { check, libc } from "./libc.ts";
import { SOCK_CLOEXEC } from "./net.ts";
import { SOCK_NONBLOCK } from "./netio.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
export const NETLINK_NETFILTER = 12;

/** A NETLINK_NETFILTER socket in the calling thread's network namespace (`nonblocking`: NFLOG's reader). */
export function openNetfilterSocket(o: { nonblocking?: boolean } = {}): number {
  const type = SOCK_RAW | SOCK_CLOEXEC | (o.nonblocking ? SOCK_NONBLOCK : 0);
  return check("socket", libc.symbols.socket(AF_NETLINK, type, NETLINK_NETFILTER), "AF_NETLINK NETLINK_NETFILTER");
}
