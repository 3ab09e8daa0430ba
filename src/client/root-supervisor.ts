// The rootful daemon's supervisor (issue 10 item 5). Rootless, the holder
// supervises the daemon (src/userns/supervisor.ts); rootful has no holder,
// so the CLI that starts a daemon starts the same script on its own, as
// `burrow-supervisor` (/bin/sh, ~1.7 MB): it starts the daemon as its child
// and again at once when it dies of anything but a clean stop, and exits when
// the daemon stops cleanly (idle, SIGTERM, handover, another version's CLI
// replacing it) or cannot start at all. So after `kill -9` of a rootful
// daemon, the ports its builtin forwarder publishes (slirp4netns's default
// handler) come back without anybody typing anything.
//
// One supervisor at a time: the CLI starts one only under daemon.lock and
// only when RUNTIME_DIR/supervisor.json names no live one (pid + start time +
// command line). Should two ever run (the file removed by hand between a
// crash and the restart), the state database's lock (src/state/lock.ts)
// still lets one daemon through; the other exits 75 and its supervisor with it.
//
// Used by the CLI (starting and finding it) and by the daemon (keeping the
// file true after its runtime directory was removed, and removing it when
// it stops cleanly).
import { nodeFs } from "../lazy-node.ts";
import type { SupervisorInfo } from "../messages.ts";
import { readSupervisorFile, supervisorAlive, writeSupervisorFile } from "../runtime-records.ts";
import type { Paths } from "../paths.ts";
import { ROLES } from "../roles.ts";
import { roleEnv, selfCommand } from "../sys/env.ts";
import { startTimeOf } from "../sys/processes.ts";
import { SUPERVISOR_ARGV0, SUPERVISOR_MARK, supervisorEnv } from "../userns/supervisor.ts";

export type { SupervisorInfo };
// supervisor.json is shared with the daemon, which keeps it true (src/runtime-records.ts).
export { removeSupervisorFile, supervisorAlive } from "../runtime-records.ts";

/** The live supervisor supervisor.json names, or null. */
export function readSupervisor(p: Paths): SupervisorInfo | null {
  const s = readSupervisorFile(p);
  return s && supervisorAlive(s) ? s : null;
}

/** The supervisor's children (its launcher or daemon), for a CLI that gives up on a start. */
export function supervisorChildren(pid: number): number[] {
  try {
    return nodeFs().readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Starts a supervisor (and with it a daemon) and records it in
 * supervisor.json. The caller holds daemon.lock and found no live one.
 * Runs in the CLI, in the host's namespaces (or a test's netns): the
 * supervisor and its daemons inherit them, as the launcher's did.
 */
export function startSupervisor(p: Paths, log: string): SupervisorInfo {
  // The supervisor starts the daemon through this very binary, inherited as
  // fd 3 (as the holder does, src/userns/holder.ts): an upgrade that
  // replaces the file never makes it restart a daemon of another version.
  // Not compiled (bun + the source, while developing): bun and the script.
  const self = selfCommand();
  const compiled = self.length === 1;
  const exe = nodeFs().openSync("/proc/self/exe", "r");
  let proc: Bun.Subprocess;
  try {
    proc = Bun.spawn(["/bin/sh", "-c", 'eval "$BURROW_SUPERVISOR"', SUPERVISOR_MARK, ...(compiled ? ["/proc/self/fd/3"] : self), ROLES.launch, "-"], {
      argv0: SUPERVISOR_ARGV0.rootful,
      env: roleEnv({ BURROW_PATHS: JSON.stringify(p), ...supervisorEnv(log, { exitOnStop: true }) }),
      stdio: ["ignore", "ignore", "ignore", exe],
      cwd: "/",
      detached: true,
    });
  } finally {
    nodeFs().closeSync(exe);
  }
  proc.unref();
  const info: SupervisorInfo = { pid: proc.pid, startTime: startTimeOf(proc.pid) ?? "" };
  writeSupervisorFile(p, info);
  return info;
}

/**
 * startSupervisor(), then waits (up to 1 s) until the child has exec'd the
 * shell: Bun.spawn may return before the exec, while /proc/PID/cmdline
 * still shows the CLI, and supervisorAlive() would take it for gone.
 */
export async function startSupervisorReady(p: Paths, log: string): Promise<SupervisorInfo> {
  const info = startSupervisor(p, log);
  for (let i = 0; i < 200 && !supervisorAlive(info) && startTimeOf(info.pid) === info.startTime; i++) await Bun.sleep(5);
  return info;
}
