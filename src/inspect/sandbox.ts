import { readFileSync } from "node:fs";
// podman-compatible views of a sandbox: `inspect` JSON and `ps` rows.
import type { Sandbox } from "../state/sandboxes.ts";
import { askedNetworks, attachedNetworks } from "../net/registry.ts";
import { CAPABILITIES, canonicalCapability } from "../sandbox/capabilities.ts";
import { isStampedLog } from "../sandbox-log.ts";
import { type EgressPolicy, inspectEgress } from "../egress/policy.ts";

/** The bridge networks a sandbox is on now, or (not running) the ones it asked for. */
export function networksOf(s: Sandbox): string[] {
  const attached = attachedNetworks(s);
  if (attached.length) return [...new Set(attached)];
  return askedNetworks(s);
}

export function portsView(s: Sandbox): Record<string, Array<{ HostIp: string; HostPort: string }> | null> {
  const out: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const p of s.runtime.ports ?? []) {
    const key = `${p.containerPort}/${p.protocol}`;
    (out[key] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
  }
  return out;
}

/**
 * burrow's own, beside Ports and keyed the same way: which address the
 * sandbox sees for each published port's clients not on loopback ("client":
 * theirs; "forwarder": the forwarder's or gateway's, with why). Loopback
 * clients always come in as the forwarder.
 */
export function sourceAddressView(s: Sandbox): Record<string, Array<{ HostIp: string; HostPort: string; SourceAddress: string; Why?: string }>> {
  const out: Record<string, Array<{ HostIp: string; HostPort: string; SourceAddress: string; Why?: string }>> = {};
  for (const p of s.runtime.ports ?? []) {
    const key = `${p.containerPort}/${p.protocol}`;
    const why =
      p.sourceAddress === "client" ? undefined : (p.sourceAddressWhy ?? (p.sourceAddress ? undefined : "published before burrow kept client addresses"));
    (out[key] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort), SourceAddress: p.sourceAddress ?? "forwarder", ...(why ? { Why: why } : {}) });
  }
  return out;
}

/** As podman prints them: CAP_NET_ADMIN for net_admin, ALL kept. */
function asCapNames(given: string[] | undefined): string[] {
  return (given ?? []).map(canonicalCapability);
}

export function inspectView(
  s: Sandbox,
  extra: { health: string | null; networks?: Record<string, object>; acceleratedConnections?: number; egressLearned?: number },
) {
  const statusName = s.status === "exited" ? "exited" : s.status;
  // podman v3 repeats the first network's addresses at the top level.
  const first = (Object.values(extra.networks ?? {})[0] ?? {}) as Record<string, unknown>;
  const top = (key: string, fallback: unknown) => first[key] ?? fallback;
  return {
    Id: s.id,
    Name: s.name,
    Created: s.createdAt,
    Path: s.spec.argv[0],
    Args: s.spec.argv.slice(1),
    // podman's LogPath: the k8s-file log (src/sandbox-log.ts); empty for a row of 0.2.0 (its log was in the runtime dir).
    LogPath: s.runtime.log ?? "",
    // Every field of podman 4's State, in its order (issue 19 item 10);
    // what burrow has no counterpart for has podman's zero value (see
    // docs/decisions.md). Restarting is set by withRestartView.
    State: {
      OciVersion: "",
      Status: statusName,
      Running: s.status === "running",
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: s.status === "running" ? (s.pid ?? 0) : 0,
      ConmonPid: 0,
      ExitCode: s.exitCode ?? 0,
      Error: extra.health ?? s.runtime.networkError ?? "",
      StartedAt: s.startedAt ?? "",
      FinishedAt: s.finishedAt ?? "",
      Health: { Status: "", FailingStreak: 0, Log: null },
      CgroupPath: s.status === "running" && s.pid ? cgroupOf(s.pid) : "",
      CheckpointedAt: ZERO_TIME,
      RestoredAt: ZERO_TIME,
      StoppedByUser: !!s.runtime.stoppedByUser,
    },
    // A row of 0.2.0 has no set: its command kept every capability. A
    // non-root --user loses the effective set at its setuid (as in podman).
    EffectiveCaps: s.spec.user && s.spec.user.uid !== 0 ? [] : (s.spec.caps ?? [...CAPABILITIES]),
    BoundingCaps: s.spec.caps ?? [...CAPABILITIES],
    Config: {
      Hostname: s.spec.hostname,
      Cmd: s.spec.argv,
      WorkingDir: s.spec.cwd,
      Labels: s.spec.labels ?? {},
    },
    HostConfig: {
      NetworkMode: s.spec.network,
      AutoRemove: s.spec.rm,
      PortBindings: portsView(s),
      Dns: s.spec.dns,
      CapAdd: asCapNames(s.spec.capAdd),
      CapDrop: asCapNames(s.spec.capDrop),
      Privileged: s.spec.privileged ?? false,
      /** burrow's own: --accelerate (docs/accelerate.md). */
      Accelerate: s.spec.accelerate ?? false,
      /** burrow's own: the egress policy (docs/egress.md), null without one; Upstream: the resolver's servers at this start. */
      Egress: egressView(s),
      LogConfig: { Type: s.runtime.log && isStampedLog(s.runtime.log) ? "k8s-file" : "file", Path: s.runtime.log ?? "" },
    },
    NetworkSettings: {
      SandboxKey: s.runtime.pins?.net ?? "",
      Ports: portsView(s),
      SourceAddresses: sourceAddressView(s),
      IPAddress: top("IPAddress", s.runtime.address ?? ""),
      IPPrefixLen: top("IPPrefixLen", 0),
      Gateway: top("Gateway", ""),
      MacAddress: top("MacAddress", ""),
      GlobalIPv6Address: top("GlobalIPv6Address", ""),
      GlobalIPv6PrefixLen: top("GlobalIPv6PrefixLen", 0),
      IPv6Gateway: top("IPv6Gateway", ""),
      Networks: extra.networks ?? {},
      /** burrow's own: TCP connections made through host sockets (--accelerate) since the daemon started. */
      AcceleratedConnections: extra.acceleratedConnections ?? 0,
      /** burrow's own: how many addresses the egress resolver has learned for --allow-host rules. */
      EgressLearned: extra.egressLearned ?? 0,
    },
  };
}

function egressView(s: Sandbox) {
  // A recorded policy that fails its schema is shown as recorded: inspect must work on any row.
  const view = inspectEgress((s.spec.egress as EgressPolicy | undefined) ?? null);
  return view && s.runtime.egress ? { ...view, Upstream: s.runtime.egress.upstreams } : view;
}

export interface PsRow {
  Id: string;
  Names: string[];
  Command: string[];
  Status: string;
  State: string;
  Pid: number;
  ExitCode: number;
  CreatedAt: string;
  StartedAt: string;
  Network: string;
  Networks: string[];
  Labels: Record<string, string>;
  Ports: Array<{ host_ip: string; host_port: number; container_port: number; protocol: string }>;
}

export function psRow(s: Sandbox, health: string | null): PsRow {
  return {
    Id: s.id,
    Names: [s.name],
    Command: s.spec.argv,
    State: s.status,
    Status: health ? `${s.status} (${health})` : s.status === "exited" ? `Exited (${s.exitCode ?? "?"})` : s.status === "running" ? "Up" : "Created",
    Pid: s.pid ?? 0,
    ExitCode: s.exitCode ?? 0,
    CreatedAt: s.createdAt,
    StartedAt: s.startedAt ?? "",
    Network: s.spec.network,
    Networks: networksOf(s),
    Labels: s.spec.labels ?? {},
    Ports: (s.runtime.ports ?? []).map((p) => ({ host_ip: p.hostIp, host_port: p.hostPort, container_port: p.containerPort, protocol: p.protocol })),
  };
}

/** Network and memory counters of a running sandbox, read from /proc (host view). */
export function sandboxStats(s: Sandbox, pids: number[]) {
  let rx = 0;
  let tx = 0;
  let rss = 0;
  // /proc/PID/net/dev shows the network namespace of PID: any sandbox process will do.
  for (const pid of pids.slice(0, 1)) {
    try {
      for (const line of readFileSync(`/proc/${pid}/net/dev`, "utf8").split("\n").slice(2)) {
        const [name, rest] = line.split(":");
        if (!rest || name!.trim() === "lo") continue;
        const f = rest.trim().split(/\s+/).map(Number);
        rx += f[0] ?? 0;
        tx += f[8] ?? 0;
      }
    } catch {}
  }
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) rss += Number(m[1]) * 1024;
    } catch {}
  }
  return { ID: s.id, Name: s.name, PIDs: pids.length, MemUsage: rss, NetInput: rx, NetOutput: tx };
}

/** Go's zero time.Time, as podman prints a time that never happened. */
const ZERO_TIME = "0001-01-01T00:00:00Z";

/** The command's cgroup v2 path (the "0::" line of /proc/PID/cgroup), "" when there is none. */
function cgroupOf(pid: number): string {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::"));
    return line ? line.slice(3) : "";
  } catch {
    return "";
  }
}
