// A CLI of one version meeting a daemon of another (after an upgrade, the
// old daemon keeps running until it is idle). The CLI that starts a daemon
// records its version and the daemon's pid in $runtimeDir/daemon.version;
// a daemon without that record (0.1.0 wrote none) or with another version is
// "other". An idle other daemon is asked to exit (SIGTERM: it finishes what
// is in flight; its state stays on disk) and the caller starts its own,
// which adopts the state. A busy one is left alone and the CLI says, in one
// line, what to do: never a protocol error from a reply it cannot read.
import { nodeFs } from "../lazy-node.ts";
import * as v from "valibot";
import { BurrowError } from "../errors.ts";
import { lazySchema } from "../messages.ts";
import { controlSocket, type Paths } from "../paths.ts";
import { LOCK, flock } from "../sys/proc.ts";
import { mine, readRecord, type DaemonRecord } from "../runtime-records.ts";
import { checkControlSocket, openPrivateAppend } from "./trust.ts";
import { DaemonSilent, takeDaemonLock, withDaemonDeadline } from "./deadline.ts";

// The record itself is shared with the daemon, which keeps it naming itself (src/runtime-records.ts).
export { writeRecord } from "../runtime-records.ts";

/** POST /op without the reply schemas: an older daemon's replies may differ. */
async function rawPost(p: Paths, op: string, body: unknown): Promise<unknown> {
  // Its own connection: the listener is checked on another one first.
  if (checkControlSocket(controlSocket(p)) === "absent") throw new Error("no daemon listening");
  // Bounded like every call: a stopped daemon must not hang the CLI here either.
  return withDaemonDeadline(p, async (signal) => {
    const res = await fetch(`http://burrow/${op}`, {
      unix: controlSocket(p),
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
      signal,
    } as RequestInit);
    return res.json();
  });
}

// Only for a daemon of another version: not built by every CLI start.
const Pid = lazySchema(() => v.looseObject({ pid: v.number() }));
const Listing = lazySchema(() => v.array(v.looseObject({ Names: v.optional(v.array(v.string())), Id: v.optional(v.string()), State: v.optional(v.string()) })));

async function answeringPid(p: Paths): Promise<number | null> {
  try {
    const r = v.safeParse(Pid, await rawPost(p, "ping", {}));
    // Not a burrow daemon's ping: the normal path reports whatever it is.
    return r.success ? r.output.pid : null;
  } catch (e) {
    if (e instanceof DaemonSilent) throw e;
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Makes sure the daemon that answers on the control socket, if any, is of
 * this version: replaces an idle other one, refuses with one line for a busy
 * one. Returns without a word when no daemon answers.
 */
export async function replaceOtherDaemon(p: Paths): Promise<void> {
  const me = mine();
  const ours = (rec: DaemonRecord | null, pid: number | null): boolean =>
    !!rec && rec.version === me.version && rec.commit === me.commit && (pid === null ? alive(rec.pid) : rec.pid === pid);
  // The common case costs a file read and a kill(pid, 0): no round trip.
  if (ours(readRecord(p), null)) return;
  if ((await answeringPid(p)) === null) return; // no daemon: the caller starts one of this version
  // A CLI of this version may be starting that daemon right now, its record
  // not written yet: it holds daemon.lock until it is. Decide under the lock,
  // or ten CLIs started at once would stop each other's new daemon.
  const fd = openPrivateAppend(`${p.runtimeDir}/daemon.lock`);
  let daemonPid: number;
  let other: string;
  try {
    await takeDaemonLock(fd, p);
    const rec = readRecord(p);
    const pid = await answeringPid(p);
    if (pid === null || ours(rec, pid)) return;
    daemonPid = pid;
    other = rec && rec.pid === pid ? `burrow ${rec.version} (commit ${rec.commit})` : "an older burrow";
    let running: string[] | null = null;
    try {
      const list = v.safeParse(Listing, await rawPost(p, "list", { all: false }));
      if (list.success) running = list.output.filter((s) => s.State === undefined || s.State === "running").map((s) => s.Names?.[0] ?? s.Id ?? "?");
    } catch (e) {
      if (e instanceof DaemonSilent) throw e;
    }
    const here = `burrow ${me.version}`;
    if (running === null) {
      throw new BurrowError(
        `a daemon of ${other} (pid ${daemonPid}) is running and ${here} cannot tell whether it is idle: run "kill ${daemonPid}" (sandboxes keep running; the new daemon adopts them), then retry`,
        { kind: "daemon-version" },
      );
    }
    if (running.length) {
      throw new BurrowError(
        `a daemon of ${other} (pid ${daemonPid}) still runs ${running.length} sandbox${running.length === 1 ? "" : "es"} (${running.join(", ")}): ${here} replaces it once they have exited, or now after "kill ${daemonPid}" (they keep running; the new daemon adopts them)`,
        { kind: "daemon-version" },
      );
    }
    try {
      process.kill(daemonPid, "SIGTERM");
    } catch {}
  } finally {
    flock(fd, LOCK.UN);
    nodeFs().closeSync(fd);
  }
  // Idle, and sent SIGTERM: wait (unlocked, so that it can end its idle
  // holder on the way out) until it has let go of the socket.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    let answers = true;
    try {
      await rawPost(p, "ping", {});
    } catch (e) {
      if (e instanceof DaemonSilent) throw e;
      answers = false;
    }
    if (!answers && !alive(daemonPid)) return;
    await Bun.sleep(20);
  }
  throw new BurrowError(`the idle daemon of ${other} (pid ${daemonPid}) did not exit within 10 s of SIGTERM: run "kill -9 ${daemonPid}", then retry`, {
    kind: "daemon-version",
  });
}
