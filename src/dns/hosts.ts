// The sandbox's /etc/hosts, like podman's generateHosts/getHosts: the host's
// localhost lines, extra entries (--add-host, network aliases), the sandbox's
// own name, and host.containers.internal.
//
// buildHosts is pure. firstHostIPv4 reads the interfaces of the caller's
// network namespace: call it from the daemon's main thread (host netns).
import { readFileSync } from "node:fs";
import { isIP, isIPv4 } from "../ip-syntax.ts";
import { networkInterfaces } from "node:os";
import { BurrowError } from "../errors.ts";

export const HOST_CONTAINERS_INTERNAL = "host.containers.internal";
/** Docker's and podman's address for the sandbox's own name without a network. */
export const NO_NETWORK_ADDRESS = "127.0.1.1";

const LOCALHOST_NAME = /^(localhost|ip6-localhost|ip6-loopback|localhost[46])(\.localdomain[46]?)?$/;
const DEFAULT_LOCALHOST = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"];

export interface HostsEntry {
  ip: string;
  names: string[];
}

export interface HostsInput {
  /** The host's /etc/hosts text (readHostHosts()). */
  hostContent: string;
  /** The sandbox's hostname. */
  hostname: string;
  /** The sandbox's name (added after the hostname when it differs). */
  name?: string;
  /** The sandbox's address on its network; null or absent: 127.0.1.1 (no network). */
  address?: string | null;
  /** host.containers.internal's address; null or absent: the entry is left out. */
  hostAddress?: string | null;
  /** --add-host entries and network aliases, written before the sandbox's own line. */
  extra?: HostsEntry[];
}

/**
 * Keeps the host's loopback lines, each with only its localhost names
 * (a line such as "127.0.1.1 myhost" names the host, not the sandbox), and
 * the IPv6 multicast lines Debian ships (ff02::1 ip6-allnodes ...).
 */
export function localhostLines(hostContent: string): string[] {
  const out: string[] = [];
  for (const raw of hostContent.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    const [ip, ...names] = line.split(/\s+/);
    if (!ip || names.length === 0) continue;
    if (/^(fe00|ff0[0-2])::/i.test(ip)) {
      out.push(`${ip}\t${names.join(" ")}`);
      continue;
    }
    if (ip !== "127.0.0.1" && ip !== "::1") continue;
    const local = names.filter((n) => LOCALHOST_NAME.test(n));
    if (local.length > 0) out.push(`${ip}\t${local.join(" ")}`);
  }
  if (!out.some((l) => l.startsWith("127.0.0.1\t"))) out.unshift(DEFAULT_LOCALHOST[0]!);
  if (!out.some((l) => l.startsWith("::1\t"))) out.splice(1, 0, DEFAULT_LOCALHOST[1]!);
  return out;
}

function checkEntry(e: HostsEntry, what: string): void {
  if (!isIP(e.ip)) {
    throw new BurrowError(`invalid ${what} address ${JSON.stringify(e.ip)}: accepted values are IPv4 or IPv6 addresses`, {
      kind: "bad-input",
    });
  }
  for (const n of e.names) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(n) || n.length > 253) {
      throw new BurrowError(`invalid ${what} name ${JSON.stringify(n)}: accepted are host names of letters, digits, "-", "_" and "."`, { kind: "bad-input" });
    }
  }
}

/** The sandbox's /etc/hosts text. Throws BurrowError on a bad address or name. */
export function buildHosts(input: HostsInput): string {
  const lines = localhostLines(input.hostContent);
  for (const e of input.extra ?? []) {
    checkEntry(e, "host entry");
    if (e.names.length > 0) lines.push(`${e.ip}\t${e.names.join(" ")}`);
  }
  const names = [input.hostname, ...(input.name && input.name !== input.hostname ? [input.name] : [])];
  const self = { ip: input.address ?? NO_NETWORK_ADDRESS, names };
  checkEntry(self, "sandbox");
  lines.push(`${self.ip}\t${names.join(" ")}`);
  if (input.hostAddress) {
    checkEntry({ ip: input.hostAddress, names: [HOST_CONTAINERS_INTERNAL] }, HOST_CONTAINERS_INTERNAL);
    lines.push(`${input.hostAddress}\t${HOST_CONTAINERS_INTERNAL}`);
  }
  return `${lines.join("\n")}\n`;
}

/** The host's /etc/hosts, or "" when it does not exist. */
export function readHostHosts(path = "/etc/hosts"): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw new BurrowError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

type Interfaces = ReturnType<typeof networkInterfaces>;

/**
 * The host's first global IPv4 address (not loopback, not link-local
 * 169.254/16), for host.containers.internal, like podman 4's GetLocalIP.
 * null when the host has none. Interfaces are those of the caller's netns.
 */
export function firstHostIPv4(interfaces: Interfaces = networkInterfaces(), exclude: readonly string[] = []): string | null {
  for (const addrs of Object.values(interfaces)) {
    for (const a of addrs ?? []) {
      if (a.family !== "IPv4" || a.internal || !isIPv4(a.address) || exclude.includes(a.address)) continue;
      if (a.address.startsWith("127.") || a.address.startsWith("169.254.") || a.address === "0.0.0.0") continue;
      return a.address;
    }
  }
  return null;
}
