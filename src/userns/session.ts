// The rootless session: one holder per user. The CLI (host namespaces) calls
// ensureHolder() under the daemon start lock.
import { startTimeOf } from "../sys/processes.ts";
import { BurrowError } from "../errors.ts";
import type { Paths } from "../paths.ts";
import { ROLES, spawnRole } from "../roles.ts";
import { nsId } from "../sys/ns.ts";
import { getgid } from "../sys/proc.ts";
import { HolderFile, type HolderInfo } from "../messages.ts";
import { readPrivateRecord, writePrivateRecord } from "../private-file.ts";
import { writeMaps } from "./idmap.ts";
import { isPrivateDir } from "../private-file.ts";
import { supervisorEnv } from "./supervisor.ts";
import { pauseToJoin } from "./podman-join.ts";
import { nodeFs } from "../lazy-node.ts";

export type { HolderInfo };

export function holderFile(p: Paths): string {
  return `${p.runtimeDir}/holder.json`;
}

/**
 * The same record kept beside state.db (issue 19 item 2). A logout removes
 * holder.json with the runtime directory; if the daemon is killed before it
 * wrote the file again, the holder still lives (it is restarting that
 * daemon) and only this copy says so. Without it the next CLI started a
 * second holder, whose daemon found the state locked and which then waited
 * forever, keeping a user and mount namespace alive.
 */
export function holderStateFile(p: Paths): string {
  return `${p.stateDir}/holder.json`;
}

/**
 * The copy is read and written only in a state dir that is already private
 * (the daemon refuses any other, and says so): a record others could plant
 * would name the process a CLI signals.
 */
function stateCopyUsable(p: Paths): boolean {
  return isPrivateDir(p.stateDir);
}

/** The live holder: holder.json's, else the state dir's copy's (a logout took holder.json). */
export function readHolder(p: Paths): HolderInfo | null {
  // O_NOFOLLOW inside: in our own private directory a link can only be planted.
  const h = readHolderFile(p);
  if (h && holderAlive(h)) return h;
  const copy = stateCopyUsable(p) ? readHolderStateFile(p) : null;
  return copy && holderAlive(copy) ? copy : null;
}

export function holderAlive(h: HolderInfo): boolean {
  return startTimeOf(h.pid) === h.startTime && nsId(`/proc/${h.pid}/ns/user`) === h.userns;
}

/**
 * Writes holder.json atomically (a new file renamed over the old one), so a
 * reader never sees half a file and the daemon, which rewrites it after a
 * logout removed it (src/daemon/ownership.ts), and the CLI never clash.
 */
export function writeHolderFile(p: Paths, info: HolderInfo): void {
  writePrivateRecord(p.runtimeDir, "holder.json", info);
}

/**
 * The state dir's copy (holderStateFile), written the same way; the state
 * dir exists (the caller made it private). Best effort: it only matters in
 * the few ms after a logout and a daemon crash, and a full state
 * filesystem must not stop a session from starting. False when not written.
 */
export function writeHolderStateFile(p: Paths, info: HolderInfo): boolean {
  if (!stateCopyUsable(p)) return false;
  try {
    writePrivateRecord(p.stateDir, "holder.json", info);
    return true;
  } catch {
    // writePrivateRecord leaves no temporary file behind.
    return false;
  }
}

/** Parses holder.json as it is now, alive or not; null when absent or unreadable. */
export function readHolderFile(p: Paths): HolderInfo | null {
  return readPrivateRecord(holderFile(p), HolderFile, "holder.json");
}

/** Parses the state dir's copy as it is now, alive or not. */
export function readHolderStateFile(p: Paths): HolderInfo | null {
  return readPrivateRecord(holderStateFile(p), HolderFile, "holder.json");
}

/** Same holder: pid and start time. */
export function sameHolder(a: HolderInfo | null, b: HolderInfo): boolean {
  return !!a && a.pid === b.pid && a.startTime === b.startTime;
}

/** Removes holder.json and its state dir copy, each only while it names `h`. */
export function removeHolderFiles(p: Paths, h: HolderInfo): void {
  if (sameHolder(readHolderFile(p), h)) nodeFs().rmSync(holderFile(p), { force: true });
  if (sameHolder(readHolderStateFile(p), h)) nodeFs().rmSync(holderStateFile(p), { force: true });
}

/** Returns the live holder, starting one when there is none. */
export async function ensureHolder(p: Paths): Promise<HolderInfo> {
  const live = readHolder(p);
  if (live) return live;
  const pause = await pauseToJoin();
  const proc = spawnRole(ROLES.holder, [], {
    // The holder supervises the daemon (src/userns/supervisor.ts): it
    // needs the paths the daemon gets and where the daemon logs.
    env: { BURROW_PATHS: JSON.stringify(p), ...supervisorEnv(`${p.runtimeDir}/daemon.log`), ...(pause ? { BURROW_HOLDER_JOIN: String(pause) } : {}) },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    detached: true,
  });
  const reader = proc.stdout.getReader();
  const first = await Promise.race([reader.read(), proc.exited.then(() => null)]);
  if (!first || first.done) {
    const err = await new Response(proc.stderr).text();
    throw new BurrowError(`could not start the rootless session: ${err.trim() || "holder exited"}`, { kind: "userns" });
  }
  try {
    // In podman's user namespace the maps are podman's (written when it was made).
    const { map, why } = pause ? { map: "podman" as const, why: "" } : await writeMaps(proc.pid, p.uid, getgid());
    // Said once: the holder lives on, and with it this choice. Plain stderr:
    // the CLI does not load the logger (it costs start-up time).
    if (map === "single") process.stderr.write(`WARN: using a single-id user namespace: ${why}; programs that change user inside a sandbox will fail\n`);
    proc.stdin.write(`go ${map}\n`);
    await proc.stdin.end();
    // Wait until the holder has exec'd sleep, so its namespaces are final.
    for (let i = 0; i < 200; i++) {
      const cmd = nodeFs().readFileSync(`/proc/${proc.pid}/cmdline`, "utf8");
      if (cmd.startsWith("burrow-holder")) break;
      await Bun.sleep(1);
    }
    const info: HolderInfo = {
      pid: proc.pid,
      startTime: startTimeOf(proc.pid)!,
      userns: nsId(`/proc/${proc.pid}/ns/user`)!,
      mntns: nsId(`/proc/${proc.pid}/ns/mnt`)!,
      map,
    };
    writeHolderFile(p, info);
    writeHolderStateFile(p, info);
    reader.releaseLock();
    proc.unref();
    return info;
  } catch (e) {
    proc.kill(9);
    nodeFs().rmSync(holderFile(p), { force: true });
    throw e;
  }
}
