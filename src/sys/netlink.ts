// Policy routing over rtnetlink, in the calling THREAD's network namespace
// (a netlink socket belongs to the netns it was created in). Used by the
// port forwarder's connector Worker while it is inside a sandbox's netns, to
// bring the replies to a client-address (IP_TRANSPARENT) connection back to
// the forwarder's socket instead of out of the sandbox's default route:
//
//   ip rule add fwmark MARK lookup TABLE priority PRIO
//   ip route add local 0.0.0.0/0 dev lo table TABLE     (and ::/0 for IPv6)
//   sysctl net.ipv4.tcp_fwmark_accept=1                  (per netns)
//
// Needs CAP_NET_ADMIN over that netns (burrow's daemon has it over every
// sandbox netns: they belong to its user namespace). Spawning `ip` would
// cost a process per sandbox and an iproute2 dependency; the messages are
// small and fixed.
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { check, cstr, errno, libc, SysError } from "./libc.ts";
import { AF_INET, AF_INET6, SOCK_CLOEXEC } from "./net.ts";
import { close } from "./ns.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const RTM_NEWROUTE = 24;
const RTM_NEWRULE = 32;
const RTM_DELNEIGH = 29;
const NDA_DST = 1;
const RTM_GETRULE = 34;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NLM_F_DUMP = 0x300;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const RT_TABLE_UNSPEC = 0;
const RTPROT_STATIC = 4;
const RT_SCOPE_HOST = 254;
const RTN_LOCAL = 2;
const RTN_UNICAST = 1;
const RTA_OIF = 4;
const RTA_TABLE = 15;
const FRA_PRIORITY = 6;
const FRA_FWMARK = 10;
const FRA_TABLE = 15;
const FRA_FWMASK = 16;
const FR_ACT_TO_TBL = 1;
/** The loopback device has this index in every network namespace. */
const LOOPBACK_IFINDEX = 1;
const O_WRONLY = 1;
const O_CLOEXEC = 0o2000000;

/** One rtnetlink request: nlmsghdr, a 12-byte family header, then u32 attributes. */
function message(type: number, flags: number, header: number[], attrs: Array<[number, number]>): Uint8Array {
  const len = 16 + 12 + attrs.length * 8;
  const buf = new Uint8Array(len);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, len, true);
  dv.setUint16(4, type, true);
  dv.setUint16(6, flags, true);
  dv.setUint32(8, 1, true); // seq
  buf.set(header, 16);
  let off = 28;
  for (const [kind, value] of attrs) {
    dv.setUint16(off, 8, true);
    dv.setUint16(off + 2, kind, true);
    dv.setUint32(off + 4, value >>> 0, true);
    off += 8;
  }
  return buf;
}

function openRoute(): number {
  return check("socket", libc.symbols.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), "AF_NETLINK");
}

/**
 * Sends one request and reads the kernel's answer: resolves at the ack
 * (NLMSG_ERROR 0) or NLMSG_DONE, throws SysError for an error answer.
 */
function request(fd: number, msg: Uint8Array, what: string): void {
  if (Number(libc.symbols.write(fd, ptr(msg), msg.length)) !== msg.length) throw new SysError("write", errno(), `netlink ${what}`);
  const reply = new Uint8Array(16384);
  for (;;) {
    const n = Number(libc.symbols.read(fd, ptr(reply), reply.length));
    if (n < 0) throw new SysError("read", errno(), `netlink ${what}`);
    const dv = new DataView(reply.buffer);
    for (let off = 0; off + 16 <= n; ) {
      const len = dv.getUint32(off, true);
      const type = dv.getUint16(off + 4, true);
      if (type === NLMSG_DONE) return;
      if (type === NLMSG_ERROR) {
        const err = -dv.getInt32(off + 16, true);
        if (err === 0) return;
        throw new SysError("netlink", err, what);
      }
      if (len < 16) return;
      off += (len + 3) & ~3;
    }
  }
}

export type LocalDelivery = { family: typeof AF_INET | typeof AF_INET6; mark: number; table: number; priority: number };

/**
 * In the calling thread's netns: packets carrying `mark` are looked up in
 * `table`, where every address is local (delivered through lo). Idempotent:
 * a rule or route that is there already counts as done.
 */
export function addLocalDelivery(o: LocalDelivery): void {
  const fd = openRoute();
  const fresh = (fn: () => void) => {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof SysError && e.errno === ERRNO.EEXIST)) throw e;
    }
  };
  const flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  const family = o.family === AF_INET6 ? "IPv6" : "IPv4";
  try {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(u32)
    fresh(() =>
      request(
        fd,
        message(
          RTM_NEWROUTE,
          flags,
          [o.family, 0, 0, 0, RT_TABLE_UNSPEC, RTPROT_STATIC, RT_SCOPE_HOST, RTN_LOCAL, 0, 0, 0, 0],
          [
            [RTA_TABLE, o.table],
            [RTA_OIF, LOOPBACK_IFINDEX],
          ],
        ),
        `${family} local route in table ${o.table}`,
      ),
    );
    // struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags(u32)
    fresh(() =>
      request(
        fd,
        message(
          RTM_NEWRULE,
          flags,
          [o.family, 0, 0, 0, RT_TABLE_UNSPEC, 0, 0, FR_ACT_TO_TBL, 0, 0, 0, 0],
          [
            [FRA_PRIORITY, o.priority],
            [FRA_FWMARK, o.mark],
            [FRA_FWMASK, 0xffffffff],
            [FRA_TABLE, o.table],
          ],
        ),
        `${family} rule fwmark ${o.mark} lookup ${o.table}`,
      ),
    );
  } finally {
    close(fd);
  }
}

/**
 * net.ipv4.tcp_fwmark_accept=1 in the calling thread's netns (/proc/sys/net
 * follows the netns of the thread that opens it): a connection accepted
 * there carries the mark of the SYN that opened it, so the server's replies
 * are routed by that mark. It covers IPv6 too.
 */
const TCP_FWMARK_ACCEPT = "/proc/sys/net/ipv4/tcp_fwmark_accept";

export function enableTcpFwmarkAccept(): void {
  const fd = check("open", libc.symbols.open(ptr(cstr(TCP_FWMARK_ACCEPT)), O_WRONLY | O_CLOEXEC, 0), TCP_FWMARK_ACCEPT);
  try {
    const one = new TextEncoder().encode("1\n");
    if (Number(libc.symbols.write(fd, ptr(one), one.length)) !== one.length) throw new SysError("write", errno(), TCP_FWMARK_ACCEPT);
  } finally {
    close(fd);
  }
}

/**
 * Whether the kernel has policy routing (CONFIG_IP_MULTIPLE_TABLES): a dump
 * of the IPv4 rules of the calling thread's netns, which needs no privilege.
 * Returns null when it works, else why not.
 */
export function policyRoutingMissing(): string | null {
  let fd = -1;
  try {
    fd = openRoute();
    request(fd, message(RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, [AF_INET, 0, 0, 0, 0, 0, 0, RTN_UNICAST, 0, 0, 0, 0], []), "rule dump");
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    if (fd >= 0) close(fd);
  }
}

/**
 * In the calling thread's netns: forgets the neighbour entry of IPv4 `ip` on
 * interface `device` (the bridge), if there is one. A sandbox that gets its
 * address back with a new MAC (stop + start on netavark 1.4, which sends no
 * gratuitous ARP) is otherwise unreachable across the bridge until the old
 * entry times out. false when there was nothing to forget.
 */
export function forgetNeighbour(ip: string, device: string): boolean {
  const index = libc.symbols.if_nametoindex(ptr(cstr(device)));
  if (!index) return false;
  const b = ip.split(".").map(Number);
  const header = [AF_INET, 0, 0, 0, index & 0xff, (index >> 8) & 0xff, (index >> 16) & 0xff, (index >>> 24) & 0xff, 0, 0, 0, 0];
  const fd = openRoute();
  try {
    request(
      fd,
      message(RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, header, [[NDA_DST, b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)]]),
      `forget neighbour ${ip}`,
    );
    return true;
  } catch (e) {
    if (e instanceof SysError && e.code === "ENOENT") return false;
    throw e;
  } finally {
    close(fd);
  }
}
