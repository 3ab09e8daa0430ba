// `burrow network ls` output: a podman-style table (NETWORK ID, NAME,
// DRIVER), names only (--quiet), or JSON.
//
// Pure: no system access.
import type { Network } from "./networks.ts";
import type { NetworkSummary as BackendNetworkSummary } from "../backend.ts";

/** podman 4's network JSON shape (the backend's NetworkSummary), plus the CNI version and plugin types of the conflist. */
// A type, not an interface: it must fit the reply schema's open record (protocol.ts Handlers).
export type NetworkSummary = BackendNetworkSummary & {
  cni_version: string;
  plugins: string[];
};

export function networkSummary(n: Network): NetworkSummary {
  const ipamDriver = n.conflist.plugins.find((p) => p.ipam?.type)?.ipam?.type;
  return {
    name: n.name,
    id: n.id,
    driver: n.driver,
    ...(n.bridge ? { network_interface: n.bridge } : {}),
    ...(n.created ? { created: n.created.toISOString() } : {}),
    subnets: n.subnets.map((r) => ({
      subnet: r.subnet,
      ...(r.gateway ? { gateway: r.gateway } : {}),
      ...(r.rangeStart || r.rangeEnd ? { lease_range: { start_ip: r.rangeStart, end_ip: r.rangeEnd } } : {}),
    })),
    ipv6_enabled: n.ipv6Enabled,
    internal: n.internal,
    dns_enabled: n.dnsEnabled,
    ...(Object.keys(n.labels).length ? { labels: n.labels } : {}),
    ...(ipamDriver ? { ipam_options: { driver: ipamDriver } } : {}),
    cni_version: n.cniVersion,
    plugins: n.plugins,
  };
}

/**
 * Go's tabwriter as podman uses it (minwidth 12, padding 2, blanks): every
 * column but the last is as wide as its widest cell plus 2, at least 12.
 */
export function formatTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      if (i < row.length - 1) widths[i] = Math.max(widths[i] ?? 0, Math.max(12, cell.length + 2));
    });
  }
  return rows.map((row) => row.map((cell, i) => (i < row.length - 1 ? cell.padEnd(widths[i]!) : cell)).join("")).join("\n");
}

export interface ListFormatOptions {
  /** "table" (default) or "json". */
  format?: "table" | "json";
  /** Names only, one per line. */
  quiet?: boolean;
  /** Table without its header line. */
  noHeading?: boolean;
}

/** The text `network ls` prints (without a trailing newline; empty when there is nothing to print). */
export function formatNetworkList(networks: Network[], opts: ListFormatOptions = {}): string {
  if (opts.format === "json") return JSON.stringify(networks.map(networkSummary), null, 4);
  if (opts.quiet) return networks.map((n) => n.name).join("\n");
  const rows = networks.map((n) => [n.id.slice(0, 12), n.name, n.driver]);
  if (!opts.noHeading) rows.unshift(["NETWORK ID", "NAME", "DRIVER"]);
  return formatTable(rows);
}
