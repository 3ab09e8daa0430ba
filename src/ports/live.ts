// `burrow port add|rm` on a running sandbox: which recorded ports a `port rm`
// argument names, and the sandbox's -p list (its spec) kept in step with
// what it publishes, so that `start` after a stop brings back the ports as
// they are now. Pure: no namespace, no I/O.
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";
import type { PortRecord } from "../state/sandboxes.ts";
import { conflicts, formatHostAddress, formatPortLine, maxPorts, type PortMapping, parsePortSpec, type Protocol } from "./spec.ts";

export const REMOVAL_FORMS = "HOSTPORT[/PROTO] (every mapping of that host port), or a -p value with its host port, as in 8080:80, 127.0.0.1:8080:80/udp";

/** Same mapping: host address, host port, container port and protocol. */
function same(a: PortMapping, b: PortMapping): boolean {
  return a.hostIp === b.hostIp && a.hostPort === b.hostPort && a.containerPort === b.containerPort && a.protocol === b.protocol;
}

/**
 * `port add` values, parsed as run's -p reads them (ranges, host port 0 or
 * none for a free one): refuses, naming the value, one that clashes with a
 * port the sandbox publishes or goes beyond the limit counted with them.
 */
export function checkAdditions<M extends PortMapping>(specs: M[], existing: readonly PortRecord[], max = maxPorts()): M[] {
  if (existing.length + specs.length > max)
    throw new BurrowError(
      `the sandbox publishes ${existing.length} ports and these add ${specs.length}: a sandbox can publish at most ${max}; publish fewer, or raise the limit with BURROW_MAX_PORTS in the daemon's environment`,
      { kind: "bad-input" },
    );
  for (const m of specs) {
    const clash = existing.find((o) => conflicts(o, m));
    if (clash)
      throw new BurrowError(
        `host port ${formatHostAddress(m)}/${m.protocol} is already published by this sandbox (${formatPortLine(clash)}); remove that first with \`burrow port rm\``,
        { kind: "bad-input" },
      );
  }
  return specs;
}

/** The recorded ports `port rm` values name; every value must name at least one. */
export function parseRemovals(raw: readonly string[], existing: readonly PortRecord[]): PortRecord[] {
  const out: PortRecord[] = [];
  const take = (p: PortRecord) => {
    if (!out.includes(p)) out.push(p);
  };
  const published = existing.length ? existing.map(formatPortLine).join(", ") : "none";
  for (const value of raw) {
    const hostOnly = /^(\d+)(?:\/([a-zA-Z]+))?$/.exec(value);
    if (hostOnly) {
      const port = Number(hostOnly[1]);
      const protocol = (hostOnly[2] ?? "tcp").toLowerCase();
      if (port < 1 || port > 65535 || (protocol !== "tcp" && protocol !== "udp"))
        throw new BurrowError(`invalid port ${quote(value)}: accepted forms are ${REMOVAL_FORMS}`, { kind: "bad-input" });
      const hits = existing.filter((p) => p.hostPort === port && p.protocol === (protocol as Protocol));
      if (!hits.length)
        throw new BurrowError(`host port ${port}/${protocol} is not published by this sandbox (its ports: ${published})`, { kind: "bad-input" });
      hits.forEach(take);
      continue;
    }
    let mappings: PortMapping[];
    try {
      mappings = parsePortSpec(value);
    } catch (e) {
      throw new BurrowError(`invalid port ${quote(value, 80)}: accepted forms are ${REMOVAL_FORMS}`, { kind: "bad-input", cause: e });
    }
    for (const m of mappings) {
      if (m.hostPort === 0)
        throw new BurrowError(`invalid port ${quote(value, 80)}: give the host port to remove; accepted forms are ${REMOVAL_FORMS}`, { kind: "bad-input" });
      const hit = existing.find((p) => same(p, m));
      if (!hit) throw new BurrowError(`${formatPortLine(m)} is not published by this sandbox (its ports: ${published})`, { kind: "bad-input" });
      take(hit);
    }
  }
  return out;
}

/** One mapping as a -p value parsePortSpec reads back the same: 8080:80/tcp, 127.0.0.1::80/udp, [::1]:8080:80/tcp. */
export function formatSpec(m: PortMapping): string {
  const host = m.hostPort === 0 ? "" : String(m.hostPort);
  if (m.hostIp === "") return host ? `${host}:${m.containerPort}/${m.protocol}` : `${m.containerPort}/${m.protocol}`;
  const ip = m.hostIp.includes(":") ? `[${m.hostIp}]` : m.hostIp;
  return `${ip}:${host}:${m.containerPort}/${m.protocol}`;
}

/**
 * The -p list without the removed ports: each goes with the value that
 * asked for it (its host port, or a free one: 0). The remaining values are
 * written one per mapping. Unchanged when no value asked for them.
 */
export function specWithout(specPorts: readonly string[], removed: readonly PortRecord[]): string[] {
  let expanded: PortMapping[];
  try {
    expanded = specPorts.flatMap((p) => parsePortSpec(p));
  } catch {
    return [...specPorts]; // a row from a build that read -p otherwise: left as it is
  }
  let changed = false;
  for (const r of removed) {
    let i = expanded.findIndex((m) => same(m, r));
    if (i < 0) i = expanded.findIndex((m) => same(m, { ...r, hostPort: 0 }));
    if (i < 0) continue;
    expanded.splice(i, 1);
    changed = true;
  }
  return changed ? expanded.map(formatSpec) : [...specPorts];
}
