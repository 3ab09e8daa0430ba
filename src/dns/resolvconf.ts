// The sandbox's /etc/resolv.conf, built like podman v3's generateResolvConf
// (libpod/container_internal_linux.go + pkg/resolvconf): host nameservers that
// are reachable from the sandbox, the network's own DNS first, --dns over all.
// Decisions that differ from podman are in docs/dns.md.
//
// buildResolvConf is pure. readHostResolvConf reads files of the caller's
// mount namespace (call it from the daemon: the host's /etc, /run).
import { readFileSync, realpathSync } from "node:fs";
import { isIP, isIPv4, isIPv6 } from "../ip-syntax.ts";
import { BurrowError } from "../errors.ts";

/** Where systemd-resolved keeps the real upstream servers (podman reads the same file). */
export const SYSTEMD_RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf";
/** systemd-resolved's stub listener. */
export const SYSTEMD_RESOLVED_STUB = "127.0.0.53";

export interface ParsedResolvConf {
  nameservers: string[];
  /** From the last `search` or `domain` line, as libc does. */
  search: string[];
  options: string[];
}

/** Parses resolv.conf text the way libc reads it (first token decides; # and ; start comments). */
export function parseResolvConf(content: string): ParsedResolvConf {
  const out: ParsedResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of content.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    if (!line) continue;
    const [key, ...rest] = line.split(/\s+/);
    if (key === "nameserver" && rest[0]) out.nameservers.push(rest[0]);
    else if (key === "search") out.search = rest;
    else if (key === "domain" && rest[0]) out.search = [rest[0]];
    else if (key === "options") out.options.push(...rest);
  }
  return out;
}

/** 127.0.0.0/8 or ::1: the sandbox's own loopback, never the host's resolver. */
export function isLoopbackNameserver(ns: string): boolean {
  const addr = ns.split("%")[0]!;
  if (isIPv4(addr)) return addr.startsWith("127.");
  if (!isIPv6(addr)) return false;
  const canonical = canonicalIPv6(addr);
  return canonical === "::1" || canonical.startsWith("::ffff:7f");
}

/** RFC 5952 form ("0:0::0001" -> "::1"), via the URL parser. */
export function canonicalIPv6(addr: string): string {
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
}

function isIPv6Nameserver(ns: string): boolean {
  return isIPv6(ns.split("%")[0]!);
}

export interface ResolvConfInput {
  /** The host's resolv.conf text (from readHostResolvConf). */
  hostContent: string;
  /**
   * The network's own resolvers, put before the host's: slirp4netns's
   * 10.0.2.3 (slirp4netnsAddresses().dns), pasta's, a CNI dnsname gateway.
   */
  firstNameservers?: string[];
  /** --dns: replaces every other nameserver, firstNameservers included (podman). */
  dns?: string[];
  /** --dns-search: replaces the host's search list; "." means none (podman). */
  dnsSearch?: string[];
  /** --dns-option: replaces the host's options (podman). */
  dnsOptions?: string[];
  /** Keep IPv6 nameservers (the sandbox has IPv6 connectivity). */
  ipv6?: boolean;
}

export interface ResolvConf extends ParsedResolvConf {
  /** The file to bind over the sandbox's /etc/resolv.conf. */
  content: string;
  /** Host nameservers left out, with why (for `burrow inspect`/debug logs). */
  dropped: Array<{ nameserver: string; reason: "loopback" | "ipv6" }>;
}

/**
 * Builds the sandbox's resolv.conf. Like podman's FilterResolvDNS with a new
 * netns: host loopback resolvers are dropped (unreachable from the sandbox;
 * slirp4netns's and pasta's forwarders reach them for us) and IPv6 ones too
 * unless `ipv6`. Unlike podman, no public resolvers (8.8.8.8) are added
 * when none remain: see docs/dns.md. Throws BurrowError for a --dns value
 * that is not an IP address.
 */
export function buildResolvConf(input: ResolvConfInput): ResolvConf {
  const host = parseResolvConf(input.hostContent);
  const dropped: ResolvConf["dropped"] = [];
  let nameservers: string[];
  if (input.dns && input.dns.length > 0) {
    for (const d of input.dns) {
      if (!isIP(d.split("%")[0]!)) {
        throw new BurrowError(`invalid --dns ${JSON.stringify(d)}: accepted values are IPv4 or IPv6 addresses`, { kind: "bad-input" });
      }
    }
    nameservers = [...input.dns];
  } else {
    const kept = host.nameservers.filter((ns) => {
      if (isLoopbackNameserver(ns)) dropped.push({ nameserver: ns, reason: "loopback" });
      else if (!input.ipv6 && isIPv6Nameserver(ns)) dropped.push({ nameserver: ns, reason: "ipv6" });
      else return true;
      return false;
    });
    nameservers = [...(input.firstNameservers ?? []), ...kept];
  }
  nameservers = [...new Set(nameservers)];

  let search = host.search;
  if (input.dnsSearch && input.dnsSearch.length > 0) search = input.dnsSearch.includes(".") ? [] : [...input.dnsSearch];
  const options = input.dnsOptions && input.dnsOptions.length > 0 ? [...input.dnsOptions] : host.options;

  // podman's resolvconf.Build order: search, nameservers, options.
  const lines: string[] = [];
  if (search.length > 0) lines.push(`search ${search.join(" ")}`);
  for (const ns of nameservers) lines.push(`nameserver ${ns}`);
  if (options.length > 0) lines.push(`options ${options.join(" ")}`);
  const content = lines.length > 0 ? `${lines.join("\n")}\n` : "";
  return { content, nameservers, search, options, dropped };
}

export interface HostResolvConf {
  /** The text to build from. */
  content: string;
  /** The file it came from (after symlinks, or the systemd-resolved upstream file). */
  source: string;
  /** Where /etc/resolv.conf really lives (its symlink target, for binding over it). */
  realPath: string | null;
}

/**
 * Reads the host's resolv.conf (following its symlink). When it is
 * systemd-resolved's stub (the symlink points at stub-resolv.conf, or
 * 127.0.0.53 is its only nameserver, podman's test), reads the upstream
 * servers from /run/systemd/resolve/resolv.conf instead, as podman does: the
 * stub listens on the host's loopback, which a sandbox cannot reach. A
 * missing file is empty (resolv.conf need not exist).
 */
export function readHostResolvConf(path = "/etc/resolv.conf", upstreamPath = SYSTEMD_RESOLVED_UPSTREAM): HostResolvConf {
  let realPath: string | null = null;
  try {
    realPath = realpathSync(path);
  } catch {}
  const content = readOrEmpty(path);
  const viaStub = realPath?.endsWith("/stub-resolv.conf") ?? false;
  const ns = parseResolvConf(content).nameservers;
  if (viaStub || (ns.length === 1 && ns[0] === SYSTEMD_RESOLVED_STUB)) {
    const upstream = readOrNull(upstreamPath);
    if (upstream !== null) return { content: upstream, source: upstreamPath, realPath };
  }
  return { content, source: realPath ?? path, realPath };
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new BurrowError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function readOrEmpty(path: string): string {
  return readOrNull(path) ?? "";
}
