// `--user` for run and exec: resolving USER[:GROUP] against the host's
// /etc/passwd and /etc/group (a sandbox sees the host's filesystem), and the
// check that the ids exist in the sandbox's user namespace. Pure functions:
// the CLI resolves names, the daemon (run) and the enter child (exec) check
// the ids against the uid_map/gid_map they live under.
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";

/** The credentials a command runs with. */
export interface ProcessUser {
  uid: number;
  gid: number;
  /** Supplementary groups (from /etc/group when no group was given). */
  groups: number[];
  /** The user's home from /etc/passwd, when it has an entry. */
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const ID = /^\d+$/;

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || !f[0] || !ID.test(f[2]!) || !ID.test(f[3]!)) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !f[0] || !ID.test(f[2]!)) continue;
    out.push({ name: f[0], gid: Number(f[2]), members: f[3]!.split(",").filter(Boolean) });
  }
  return out;
}

const MAX_ID = 0xfffffffe;

function numeric(s: string, what: string, spec: string): number {
  const n = Number(s);
  if (n > MAX_ID) throw new BurrowError(`--user ${quote(spec)}: ${what} ${s} is out of range (at most ${MAX_ID})`, { kind: "bad-input" });
  return n;
}

/**
 * Resolves podman's --user forms: NAME, UID, NAME:GROUP, UID:GID (and any
 * mix). Without a group the user's primary group from /etc/passwd is used
 * (0 for a uid without an entry, as podman does) plus the groups that list
 * the user in /etc/group.
 */
export function resolveUser(spec: string, passwdText: string, groupText: string): ProcessUser {
  const colon = spec.indexOf(":");
  const u = colon >= 0 ? spec.slice(0, colon) : spec;
  const g = colon >= 0 ? spec.slice(colon + 1) : undefined;
  if (!u || g === "") throw new BurrowError(`--user ${quote(spec)} is not valid: use USER, UID, USER:GROUP or UID:GID`, { kind: "bad-input" });
  const passwd = parsePasswd(passwdText);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (ID.test(u)) {
    uid = numeric(u, "uid", spec);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === u);
    if (!entry)
      throw new BurrowError(
        `--user ${quote(spec)}: unable to find user ${quote(u)}: no matching entries in passwd file (the host's /etc/passwd; a numeric uid needs no entry)`,
        { kind: "bad-input" },
      );
    uid = entry.uid;
  }
  const groups = parseGroup(groupText);
  let gid: number;
  let extra: number[] = [];
  if (g === undefined) {
    gid = entry?.gid ?? 0;
    if (entry) extra = groups.filter((gr) => gr.members.includes(entry!.name) && gr.gid !== gid).map((gr) => gr.gid);
  } else if (ID.test(g)) {
    gid = numeric(g, "gid", spec);
  } else {
    const found = groups.find((gr) => gr.name === g);
    if (!found)
      throw new BurrowError(
        `--user ${quote(spec)}: unable to find group ${quote(g)}: no matching entries in group file (the host's /etc/group; a numeric gid needs no entry)`,
        { kind: "bad-input" },
      );
    gid = found.gid;
  }
  return { uid, gid, groups: [...new Set(extra)], ...(entry ? { home: entry.home } : {}) };
}

export interface IdRange {
  inside: number;
  count: number;
}

/** Reads a /proc/PID/uid_map or gid_map text: "inside outside count" per line. */
export function parseIdMap(text: string): IdRange[] {
  const out: IdRange[] = [];
  for (const line of text.split("\n")) {
    const [inside, , count] = line.trim().split(/\s+/);
    if (inside === undefined || count === undefined || !ID.test(inside) || !ID.test(count)) continue;
    out.push({ inside: Number(inside), count: Number(count) });
  }
  return out;
}

function mapped(id: number, map: IdRange[]): boolean {
  return map.some((r) => id >= r.inside && id < r.inside + r.count);
}

/** "0-65536" for podman's usual two lines (0 -> the user, 1.. -> /etc/subuid). */
function describe(map: IdRange[]): string {
  const merged: { from: number; to: number }[] = [];
  for (const r of [...map].sort((a, b) => a.inside - b.inside)) {
    const last = merged.at(-1);
    if (last && r.inside === last.to + 1) last.to = r.inside + r.count - 1;
    else merged.push({ from: r.inside, to: r.inside + r.count - 1 });
  }
  return merged.map((m) => (m.from === m.to ? `${m.from}` : `${m.from}-${m.to}`)).join(", ") || "none";
}

/**
 * Refuses a uid or gid the sandbox's user namespace does not map (setresuid
 * would fail with EINVAL). Unmapped supplementary groups are dropped: they
 * come from the host's /etc/group, not from the user.
 */
export function checkMapped(user: ProcessUser, uidMap: IdRange[], gidMap: IdRange[]): ProcessUser {
  if (!mapped(user.uid, uidMap))
    throw new BurrowError(
      `--user: uid ${user.uid} is not mapped in the sandbox's user namespace (mapped uids: ${describe(uidMap)}); use one of those, or give your user a larger range in /etc/subuid`,
      { kind: "bad-input" },
    );
  if (!mapped(user.gid, gidMap))
    throw new BurrowError(
      `--user: gid ${user.gid} is not mapped in the sandbox's user namespace (mapped gids: ${describe(gidMap)}); use one of those, or give your user a larger range in /etc/subgid`,
      { kind: "bad-input" },
    );
  return { ...user, groups: user.groups.filter((g) => mapped(g, gidMap)) };
}
