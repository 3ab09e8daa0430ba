// Typed access to the sandboxes and events tables.
import { type Database, SQLiteError } from "bun:sqlite";
import { BurrowError, notFound } from "../errors.ts";
import type { CreateRequest } from "../protocol.ts";
import type { RestartState } from "../sandbox/restart-policy.ts";
import type { PidCounter } from "../sys/processes.ts";
import { checkpoint, pruneEvents, retentionFromEnv, type Retention } from "./retention.ts";
import { quote } from "../quote.ts";

export type Status = "created" | "running" | "exited";

/** What setup made, enough to enter and to tear down after a daemon restart. */
export interface Runtime {
  pins: { net: string; uts: string; mnt: string } | null;
  /** Inode numbers of the sandbox's namespaces, to find its processes. */
  ino: { net: number; uts: number; mnt: number } | null;
  /** Network mode actually in use ("none", "host", "slirp4netns", "container", "ns", or a CNI name list). */
  network: string;
  /** Sandbox whose network namespace this one shares (container:NAME). */
  netOf?: string;
  /** Network backend record (slirp4netns pid etc.), written and read only by its backend. */
  backend?: unknown;
  /** Published ports as resolved (actual host ports). */
  ports?: PortRecord[];
  /** Which port driver published them. */
  portDriver?: string;
  /** false: the user turned the client's address off for these ports (slirp4netns:source_ip=false). */
  keepClientAddress?: false;
  /** IP address of the sandbox on its primary network, when it has one. */
  address?: string;
  /** The sandbox has IPv6 there (slirp4netns enable_ipv6, a bridge network with an IPv6 subnet): the forwarder reaches it over IPv6 for IPv6 clients. */
  ipv6?: boolean;
  /** Its IPv6 address there when the backend fixed it (bridge networks); absent: looked up in its netns (slirp4netns's SLAAC). */
  address6?: string;
  networkError?: string;
  /** Set while its create is under way (src/daemon/create-retry.ts). */
  partial?: boolean;
  /** Restart-policy supervision (src/daemon/restart.ts). */
  restart?: RestartState;
  /** Its last end was a `stop` (inspect's State.StoppedByUser); cleared when it starts again. */
  stoppedByUser?: boolean;
  /**
   * The detached output's file (paths.ts sandboxLog): in the state dir so
   * a logout cannot take it. Unset in rows made by 0.2.0 and earlier, whose log
   * stays in the runtime dir.
   */
  log?: string;
  /**
   * Inodes of the pipes a detached command's stdout and stderr go to
   * (src/daemon/log-copy.ts): a new daemon opens them again through the
   * command's /proc/PID/fd/1 and 2, and only if they are still these.
   */
  logPipes?: { stdout: number; stderr: number };
  /**
   * The kernel's pid counter just before its namespaces could hold a
   * process (src/sys/processes.ts pidCounter): its release looks only at
   * the pids handed out since (and its command's) instead of all of /proc.
   * Absent in rows of earlier daemons, and when /proc would not say.
   */
  pidMark?: PidCounter;
  /** Egress policy (spec.egress): what this start resolved for it (src/daemon/egress.ts); a new daemon attaches the resolver with it. */
  egress?: EgressRuntime;
}

/** A policy's context at this start (src/egress/policy.ts PolicyContext) and the resolver's upstreams. */
export interface EgressRuntime {
  /** The `host` preset's addresses. */
  hostAddresses: string[];
  /** The sandbox's own addresses. */
  sandboxAddresses: string[];
  /** The resolver's upstream servers. */
  upstreams: string[];
  /** What could not be resolved (a debug line each at start). */
  missing?: string[];
}

export interface PortRecord {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
  /**
   * Published by burrow's builtin forwarder although the sandbox's driver is
   * portmap: a port added to a running rootful bridge sandbox (`burrow port
   * add`), which neither CNI portmap nor netavark can add to a live
   * attachment (docs/decisions.md "Ports added to a running sandbox").
   * Such a port is never handed to CNI or netavark.
   */
  forwarded?: true;
  /**
   * The address the sandbox sees for this port's clients not on loopback:
   * their own, or the forwarder's (set by the driver that published it;
   * absent in rows made before burrow kept client addresses).
   */
  sourceAddress?: "client" | "forwarder";
  /** When the forwarder's: why. */
  sourceAddressWhy?: string;
}

export interface Sandbox {
  id: string;
  name: string;
  createdAt: string;
  status: Status;
  pid: number | null;
  pidStart: string | null;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  bootId: string;
  session: string;
  /** `caps`: the command's capability set, resolved at create (absent in rows of 0.2.0: every capability). */
  spec: CreateRequest & { name: string; hostname: string; network: string; caps?: string[] };
  runtime: Runtime;
}

interface Row {
  id: string;
  name: string;
  created_at: string;
  status: Status;
  pid: number | null;
  pid_start: string | null;
  exit_code: number | null;
  started_at: string | null;
  finished_at: string | null;
  boot_id: string;
  session: string;
  spec: string;
  runtime: string;
}

function fromRow(r: Row): Sandbox {
  return {
    id: r.id,
    name: r.name,
    createdAt: r.created_at,
    status: r.status,
    pid: r.pid,
    pidStart: r.pid_start,
    exitCode: r.exit_code,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    bootId: r.boot_id,
    session: r.session,
    spec: JSON.parse(r.spec),
    runtime: JSON.parse(r.runtime),
  };
}

export class SandboxStore {
  constructor(
    private db: Database,
    private readonly retention: Retention = retentionFromEnv(),
  ) {}

  insert(s: Sandbox): void {
    try {
      this.db
        .query(
          `INSERT INTO sandboxes (id, name, created_at, status, pid, pid_start, exit_code, started_at, finished_at, boot_id, session, spec, runtime)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          s.id,
          s.name,
          s.createdAt,
          s.status,
          s.pid,
          s.pidStart,
          s.exitCode,
          s.startedAt,
          s.finishedAt,
          s.bootId,
          s.session,
          JSON.stringify(s.spec),
          JSON.stringify(s.runtime),
        );
    } catch (e) {
      // The one UNIQUE column is the name.
      if (e instanceof SQLiteError && e.code === "SQLITE_CONSTRAINT_UNIQUE") throw nameInUse(s.name);
      throw e;
    }
  }

  update(s: Sandbox): void {
    this.db
      // boot_id and session too: `start` of an exited row makes it anew in
      // this boot's and this session's namespaces (issue 19 item 3: a row
      // that kept a dead holder's session was killed as "session gone" by
      // the next daemon start, its pins left behind).
      .query(
        `UPDATE sandboxes SET status = ?, pid = ?, pid_start = ?, exit_code = ?, started_at = ?, finished_at = ?, boot_id = ?, session = ?, runtime = ? WHERE id = ?`,
      )
      .run(s.status, s.pid, s.pidStart, s.exitCode, s.startedAt, s.finishedAt, s.bootId, s.session, JSON.stringify(s.runtime), s.id);
  }

  /** The spec as a later `start` ran it (detached, with an environment). */
  updateSpec(s: Sandbox): void {
    this.db.query(`UPDATE sandboxes SET spec = ? WHERE id = ?`).run(JSON.stringify(s.spec), s.id);
  }

  delete(id: string): void {
    this.db.query("DELETE FROM sandboxes WHERE id = ?").run(id);
  }

  /** Is there a row with exactly this id? */
  has(id: string): boolean {
    return this.db.query("SELECT 1 FROM sandboxes WHERE id = ?").get(id) !== null;
  }

  nameTaken(name: string): boolean {
    return this.db.query("SELECT 1 FROM sandboxes WHERE name = ?").get(name) !== null;
  }

  all(): Sandbox[] {
    return (this.db.query("SELECT * FROM sandboxes ORDER BY created_at").all() as Row[]).map(fromRow);
  }

  /**
   * By exact id, then exact name, then unique id prefix: podman's order. An
   * id always wins over a name, so no name can hide a sandbox's id (names of
   * id shape are refused too: src/protocol.ts ID_SHAPED_NAME).
   */
  find(ref: string): Sandbox {
    const exact = (this.db.query("SELECT * FROM sandboxes WHERE id = ?").get(ref) ??
      this.db.query("SELECT * FROM sandboxes WHERE name = ?").get(ref)) as Row | null;
    if (exact) return fromRow(exact);
    if (/^[0-9a-f]+$/.test(ref)) {
      const rows = this.db.query("SELECT * FROM sandboxes WHERE id LIKE ? LIMIT 2").all(`${ref}%`) as Row[];
      if (rows.length === 1) return fromRow(rows[0]!);
      if (rows.length > 1) throw new BurrowError(`more than one sandbox matches the id prefix ${quote(ref)}: give more characters`, { kind: "ambiguous" });
    }
    throw notFound("sandbox", ref);
  }

  event(type: string, s: Pick<Sandbox, "id" | "name"> | null, attrs: Record<string, unknown> = {}): void {
    const { lastInsertRowid } = this.db
      .query("INSERT INTO events (time, type, sandbox_id, name, attrs) VALUES (?, ?, ?, ?, ?)")
      .run(new Date().toISOString(), type, s?.id ?? null, s?.name ?? null, JSON.stringify(attrs));
    // Every 100 events: prune by count and age, then shrink the WAL.
    if (Number(lastInsertRowid) % 100 === 0) this.compact();
  }

  /** Events within their bounds, and the WAL written back and truncated. */
  compact(): void {
    pruneEvents(this.db, this.retention);
    checkpoint(this.db);
  }

  eventsSince(seq: number): Array<{ seq: number; time: string; type: string; sandbox_id: string | null; name: string | null; attrs: string }> {
    return this.db.query("SELECT * FROM events WHERE seq > ? ORDER BY seq").all(seq) as any;
  }
}

export function nameInUse(name: string): BurrowError {
  return new BurrowError(`the sandbox name ${quote(name)} is already in use: remove it (burrow rm -f ${name}) or choose another name`, { kind: "name-in-use" });
}
