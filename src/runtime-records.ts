// The records in the runtime directory that the CLI and the daemon both
// read and write: daemon.version (the CLI that starts a daemon writes it,
// the daemon keeps it naming itself after a logout; src/client/upgrade.ts)
// and the rootful supervisor's supervisor.json (src/client/root-supervisor.ts
// starts and finds the supervisor; the daemon rebuilds and removes the file).
// A module of its own so that src/daemon needs nothing from src/client.
import * as v from "valibot";
import { nodeFs } from "./lazy-node.ts";
import { type SupervisorInfo, SupervisorFile } from "./messages.ts";
import type { Paths } from "./paths.ts";
import { readPrivateRecord, writePrivateRecord } from "./private-file.ts";
import { readTextFile } from "./sys/files.ts";
import { startTimeOf } from "./sys/processes.ts";
import { isSupervisor } from "./userns/supervisor.ts";
import { version } from "./version.ts";

export type { SupervisorInfo };

const Record_ = v.object({ version: v.string(), commit: v.string(), pid: v.number() });
export type DaemonRecord = v.InferOutput<typeof Record_>;

export const recordFile = (p: Paths) => `${p.runtimeDir}/daemon.version`;

export function mine(): { version: string; commit: string } {
  const { version: ver, commit } = version();
  return { version: ver, commit };
}

export function readRecord(p: Paths): DaemonRecord | null {
  try {
    // Every CLI call reads it: libc, not node:fs (src/sys/files.ts).
    const text = readTextFile(recordFile(p));
    if (text === null) return null;
    const r = v.safeParse(Record_, JSON.parse(text));
    return r.success ? r.output : null;
  } catch {
    return null;
  }
}

/** Called by the CLI that just started daemon PID. */
export function writeRecord(p: Paths, pid: number): void {
  const { writeFileSync, renameSync } = nodeFs();
  const tmp = `${recordFile(p)}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ ...mine(), pid }), { mode: 0o600 });
  renameSync(tmp, recordFile(p));
}

export function supervisorFile(p: Paths): string {
  return `${p.runtimeDir}/supervisor.json`;
}

/** Parses supervisor.json as it is now, alive or not; null when absent or unreadable. */
export function readSupervisorFile(p: Paths): SupervisorInfo | null {
  return readPrivateRecord(supervisorFile(p), SupervisorFile, "supervisor.json");
}

/** Written atomically (a new file renamed over the old one), by the CLI and the daemon alike. */
export function writeSupervisorFile(p: Paths, info: SupervisorInfo): void {
  writePrivateRecord(p.runtimeDir, "supervisor.json", info);
}

/** Removes supervisor.json only while it names `info` (never a newer supervisor's). */
export function removeSupervisorFile(p: Paths, info: SupervisorInfo): void {
  const now = readSupervisorFile(p);
  if (now && now.pid === info.pid && now.startTime === info.startTime) nodeFs().rmSync(supervisorFile(p), { force: true });
}

/** Alive and still a rootful supervisor: a reused pid or a zombie is not. */
export function supervisorAlive(info: SupervisorInfo): boolean {
  return startTimeOf(info.pid) === info.startTime && isSupervisor(info.pid, "rootful");
}

/** For the daemon: its parent, when that is a rootful supervisor (it was started by one). */
export function supervisorFromParent(): SupervisorInfo | null {
  const pid = process.ppid;
  const startTime = startTimeOf(pid);
  return startTime && isSupervisor(pid, "rootful") ? { pid, startTime } : null;
}
