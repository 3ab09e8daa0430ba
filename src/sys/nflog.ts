// NFLOG over netlink: the packets the egress ruleset refused (its `log ...
// group 25205` rules, src/egress/nft.ts), read by the daemon for refusal
// events (docs/egress.md "Events and visibility"). A NETLINK_NETFILTER
// socket bound to one NFLOG group of the network namespace it was made in:
// the connector thread makes it inside the sandbox's netns, and the egress
// worker reads it from anywhere. Non-blocking: readNflog never waits.
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { check, errno, libc, SysError } from "./libc.ts";
import { AF_INET, AF_INET6 } from "./net.ts";
import { openNetfilterSocket } from "./nfnetlink.ts";
import { type Attr, be32, nfnetlinkRequest } from "./nftables.ts";
import { close } from "./ns.ts";

const AF_UNSPEC = 0;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const MSG_DONTWAIT = 0x40;
const NLM_F_ACK = 4;
/** A receive buffer overflowed: packets were lost, the socket still works. */
const ENOBUFS = 105;

const NFNL_SUBSYS_ULOG = 4;
const NFULNL_MSG_PACKET = 0;
const NFULNL_MSG_CONFIG = 1;
const NFULA_CFG_CMD = 1;
const NFULA_CFG_MODE = 2;
const NFULA_CFG_TIMEOUT = 4;
const NFULA_CFG_QTHRESH = 5;
const CMD = { bind: 1, pfBind: 3, pfUnbind: 4 } as const;
const NFULNL_COPY_PACKET = 2;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;

/** Enough of a packet for its IP header (IPv4 options, IPv6's fixed header and a few extension headers) and the transport ports. */
const COPY_RANGE = 128;
/** Refusals come in bursts (20/s per rule, burst 40, per sandbox); a big buffer keeps a burst from overflowing it between reads. */
const RECEIVE_BUFFER = 1 << 20;

export interface NflogPacket {
  /** The log rule's prefix (`burrow-egress deny[0] `): nft.ts refusalTag() reads the rule from it. */
  prefix: string;
  family: 4 | 6;
  destination: string;
  protocol: "tcp" | "udp" | "icmp" | "other";
  /** The destination port, for TCP and UDP. */
  port?: number;
}

const config = (fd: number, family: number, resId: number, attrs: Attr[], what: string) =>
  nfnetlinkRequest(fd, { subsystem: NFNL_SUBSYS_ULOG, type: NFULNL_MSG_CONFIG, flags: NLM_F_ACK, family, resId, attrs, what });
const command = (c: number): Attr => ({ type: NFULA_CFG_CMD, value: new Uint8Array([c]) });

/**
 * A non-blocking NFLOG socket bound to `group` in the calling thread's
 * network namespace, copying the first COPY_RANGE bytes of each packet and
 * sending each one at once (the kernel's default batches up to 100 packets
 * or a second). EBUSY when another socket holds the group there.
 */
export function openNflogSocket(group: number): number {
  const fd = openNetfilterSocket({ nonblocking: true });
  try {
    const size = new Uint8Array(4);
    new DataView(size.buffer).setInt32(0, RECEIVE_BUFFER, true);
    // FORCE passes the rmem_max cap, for a daemon with CAP_NET_ADMIN over the host; otherwise the capped size.
    if (libc.symbols.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, ptr(size), 4) !== 0)
      check("setsockopt", libc.symbols.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, ptr(size), 4), "SO_RCVBUF");
    // Kernels before 3.17 route a family's log packets to nfnetlink_log only after PF_BIND (later
    // ones ignore both commands); an unbind of a family nobody bound may fail there, which is fine.
    for (const family of [AF_INET, AF_INET6]) {
      try {
        config(fd, family, 0, [command(CMD.pfUnbind)], `nflog unbind family ${family}`);
      } catch {}
      config(fd, family, 0, [command(CMD.pfBind)], `nflog bind family ${family}`);
    }
    config(fd, AF_UNSPEC, group, [command(CMD.bind)], `nflog bind group ${group}`);
    const mode = new Uint8Array(6);
    new DataView(mode.buffer).setUint32(0, COPY_RANGE, false);
    mode[4] = NFULNL_COPY_PACKET;
    config(
      fd,
      AF_UNSPEC,
      group,
      [
        { type: NFULA_CFG_MODE, value: mode },
        { type: NFULA_CFG_QTHRESH, value: be32(1) },
        { type: NFULA_CFG_TIMEOUT, value: be32(1) },
      ],
      `nflog mode of group ${group}`,
    );
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

const receiveBuffer = new Uint8Array(256 * 1024);
const PROTOCOLS: Record<number, NflogPacket["protocol"]> = { 6: "tcp", 17: "udp", 1: "icmp", 58: "icmp" };
/** IPv6 extension headers that are followed by another: hop-by-hop, routing, destination options (length in 8-byte units after the first 8). */
const IPV6_EXTENSIONS = new Set([0, 43, 60]);
const IPV6_FRAGMENT = 44;

const hex = (b: Uint8Array, at: number) => ((b[at]! << 8) | b[at + 1]!).toString(16);

function ipv6Text(b: Uint8Array, at: number): string {
  const groups = Array.from({ length: 8 }, (_, i) => hex(b, at + i * 2));
  // RFC 5952: the longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** The destination, protocol and port of an IP packet's first bytes; null if it is too short or not IP. */
export function parsePacketHeader(b: Uint8Array): Omit<NflogPacket, "prefix"> | null {
  if (b.length < 1) return null;
  const version = b[0]! >> 4;
  let protocol: number;
  let transport: number;
  let out: Omit<NflogPacket, "prefix" | "protocol">;
  if (version === 4) {
    if (b.length < 20) return null;
    transport = (b[0]! & 0x0f) * 4;
    protocol = b[9]!;
    out = { family: 4, destination: `${b[16]}.${b[17]}.${b[18]}.${b[19]}` };
    // A fragment after the first carries no transport header.
    if ((((b[6]! & 0x1f) << 8) | b[7]!) !== 0) return { ...out, protocol: PROTOCOLS[protocol] ?? "other" };
  } else if (version === 6) {
    if (b.length < 40) return null;
    out = { family: 6, destination: ipv6Text(b, 24) };
    protocol = b[6]!;
    transport = 40;
    while (IPV6_EXTENSIONS.has(protocol) || protocol === IPV6_FRAGMENT) {
      if (transport + 8 > b.length) return { ...out, protocol: "other" };
      if (protocol === IPV6_FRAGMENT && ((b[transport + 2]! << 8) | b[transport + 3]!) & 0xfff8) return { ...out, protocol: "other" };
      const next = b[transport]!;
      transport += protocol === IPV6_FRAGMENT ? 8 : (b[transport + 1]! + 1) * 8;
      protocol = next;
    }
  } else return null;
  const name = PROTOCOLS[protocol] ?? "other";
  if ((name === "tcp" || name === "udp") && transport + 4 <= b.length) return { ...out, protocol: name, port: (b[transport + 2]! << 8) | b[transport + 3]! };
  return { ...out, protocol: name };
}

/** One NFULNL_MSG_PACKET's prefix and packet. */
function parsePacketMessage(body: Uint8Array): NflogPacket | null {
  let prefix = "";
  let header: Omit<NflogPacket, "prefix"> | null = null;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let off = 4; off + 4 <= body.length; ) {
    const len = view.getUint16(off, true);
    if (len < 4 || off + len > body.length) break;
    const type = view.getUint16(off + 2, true) & 0x3fff;
    const value = body.subarray(off + 4, off + len);
    if (type === NFULA_PREFIX) {
      const end = value.indexOf(0);
      prefix = new TextDecoder().decode(end < 0 ? value : value.subarray(0, end));
    } else if (type === NFULA_PAYLOAD) header = parsePacketHeader(value);
    off += (len + 3) & ~3;
  }
  return header ? { prefix, ...header } : null;
}

/**
 * Reads everything queued on a non-blocking NFLOG socket: never blocks, []
 * when nothing is there. Packets lost to a full receive buffer (ENOBUFS)
 * are skipped: the rate-limited log is a report, never a verdict.
 */
export function readNflog(fd: number): NflogPacket[] {
  const out: NflogPacket[] = [];
  for (;;) {
    const n = Number(libc.symbols.recvfrom(fd, ptr(receiveBuffer), receiveBuffer.length, MSG_DONTWAIT, null, null));
    if (n < 0) {
      const e = errno();
      if (e === ERRNO.EAGAIN) return out;
      if (e === ERRNO.EINTR || e === ENOBUFS) continue;
      throw new SysError("recv", e, "nflog");
    }
    if (n === 0) return out;
    const view = new DataView(receiveBuffer.buffer, 0, n);
    for (let off = 0; off + 16 <= n; ) {
      const len = view.getUint32(off, true);
      if (len < 16 || off + len > n) break;
      const type = view.getUint16(off + 4, true);
      if (type === ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET) && len >= 20) {
        const packet = parsePacketMessage(receiveBuffer.subarray(off + 16, off + len));
        if (packet) out.push(packet);
      }
      off += (len + 3) & ~3;
    }
  }
}
