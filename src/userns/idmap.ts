// uid/gid maps for the holder's user namespace, like podman: the user's own id
// becomes 0 and the /etc/subuid range follows from 1. Runs in the CLI (host
// namespaces), writing the maps of the freshly unshared holder.
import { cleanEnv } from "../sys/env.ts";
import { BurrowError } from "../errors.ts";
import { nodeFs, nodeOs } from "../lazy-node.ts";

export interface IdRange {
  start: number;
  count: number;
}

/** Finds the first range for `user` (name or uid) in an /etc/subuid-style text. */
export function findRange(text: string, user: string, uid: number): IdRange | null {
  for (const line of text.split("\n")) {
    const [who, start, count] = line.trim().split(":");
    if (!who || start === undefined || count === undefined) continue;
    if (who !== user && who !== String(uid)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isInteger(s) && Number.isInteger(c) && c > 0) return { start: s, count: c };
  }
  return null;
}

function readRange(file: string, user: string, uid: number): IdRange | null {
  try {
    return findRange(nodeFs().readFileSync(file, "utf8"), user, uid);
  } catch {
    return null;
  }
}

/** NAME in PATH (then /usr/bin, /usr/sbin), or null. */
export function which(name: string): string | null {
  for (const dir of (process.env.PATH || "/usr/local/bin:/usr/bin:/bin").split(":").concat(["/usr/bin", "/usr/sbin"])) {
    if (nodeFs().existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

export type MapKind = "subid" | "single";

/**
 * Writes the maps of process `pid` (which just unshared CLONE_NEWUSER).
 * Returns which kind of map was written and, for the single-id fallback, the
 * reason, so the caller can tell the user once.
 */
export async function writeMaps(pid: number, uid: number, gid: number): Promise<{ map: MapKind; why?: string }> {
  let user = String(uid);
  try {
    user = nodeOs().userInfo().username;
  } catch {}
  const subuid = readRange("/etc/subuid", user, uid);
  const subgid = readRange("/etc/subgid", user, uid);
  const newuidmap = which("newuidmap");
  const newgidmap = which("newgidmap");
  let why: string | undefined;
  if (!subuid || !subgid) why = `no range for ${user} in /etc/subuid and /etc/subgid (add one, e.g. "${user}:100000:65536" to both)`;
  else if (!newuidmap || !newgidmap) why = `newuidmap/newgidmap not found (install the Debian package uidmap)`;
  if (!why && subuid && subgid && newuidmap && newgidmap) {
    const run = async (bin: string, id: number, r: IdRange) => {
      const p = Bun.spawn([bin, String(pid), "0", String(id), "1", "1", String(r.start), String(r.count)], {
        env: cleanEnv(),
        stdout: "ignore",
        stderr: "pipe",
      });
      const err = await new Response(p.stderr).text();
      if ((await p.exited) !== 0) throw new BurrowError(`${bin} failed: ${err.trim()}`, { kind: "userns" });
    };
    await Promise.all([run(newuidmap, uid, subuid), run(newgidmap, gid, subgid)]);
    return { map: "subid" };
  }
  // Single-id fallback: only our own uid and gid exist inside.
  nodeFs().writeFileSync(`/proc/${pid}/uid_map`, `0 ${uid} 1\n`);
  nodeFs().writeFileSync(`/proc/${pid}/setgroups`, "deny\n");
  nodeFs().writeFileSync(`/proc/${pid}/gid_map`, `0 ${gid} 1\n`);
  return { map: "single", why };
}
