// Socket constants, IPv6 address bytes, and the SIOCSIFFLAGS ioctl that
// brings an interface up (sockets for the forwarder: netio.ts, splice.ts).
import { ptr } from "bun:ffi";
import { check, libc } from "./libc.ts";
import { close } from "./ns.ts";

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;

export function ipv6Bytes(addr: string): number[] {
  const [head, tail] = addr.includes("::") ? addr.split("::") : [addr, undefined];
  const parse = (s: string | undefined) => (s ? s.split(":") : []);
  const h = parse(head);
  const t = parse(tail);
  const last = (t.length ? t : h).at(-1);
  const v4: number[] = [];
  if (last?.includes(".")) {
    (t.length ? t : h).pop();
    v4.push(...last.split(".").map(Number));
  }
  const groupsNeeded = 8 - v4.length / 2;
  const fill = tail === undefined ? [] : Array(groupsNeeded - h.length - t.length).fill("0");
  const groups = [...h, ...fill, ...t];
  const out: number[] = [];
  for (const g of groups) {
    const n = parseInt(g || "0", 16);
    out.push(n >> 8, n & 0xff);
  }
  return [...out, ...v4];
}

const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 1;

/** Brings an interface up in the calling thread's network namespace. */
export function linkUp(name: string): void {
  const fd = check("socket", libc.symbols.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  try {
    const ifr = new Uint8Array(40);
    ifr.set(Buffer.from(name, "utf8").subarray(0, 15), 0);
    check("ioctl", libc.symbols.ioctl(fd, SIOCGIFFLAGS, ptr(ifr)), `SIOCGIFFLAGS ${name}`);
    const dv = new DataView(ifr.buffer);
    dv.setUint16(16, dv.getUint16(16, true) | IFF_UP, true);
    check("ioctl", libc.symbols.ioctl(fd, SIOCSIFFLAGS, ptr(ifr)), `SIOCSIFFLAGS ${name}`);
  } finally {
    close(fd);
  }
}
