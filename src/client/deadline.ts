// A daemon that does not answer at all (stopped with SIGSTOP, or hung) must
// not hang the CLI (issue 19 item 4). Requests may rightly take long (`wait`,
// a `stop` with a long timeout, a create that starts slirp4netns), so the
// bound is on the daemon answering anything, not on the request: while a
// request is outstanding, the CLI pings the daemon on a second connection
// every quarter of the bound, and gives up when neither the request nor a
// ping has been answered for the whole bound (BURROW_DAEMON_TIMEOUT seconds,
// default 8). A healthy daemon answers a ping in well under a millisecond:
// ping skips the wait for reconciling and settling (src/daemon/main.ts).
import * as v from "valibot";
import { BurrowError } from "../errors.ts";
import { lazySchema } from "../messages.ts";
import { controlSocket, type Paths } from "../paths.ts";
import { checkControlSocket } from "./trust.ts";
import { stateLockOwner } from "../state/lock.ts";
import { flockHolder, processState } from "../sys/processes.ts";
import { isSysError } from "../sys/libc.ts";
import { LOCK, flock } from "../sys/proc.ts";

export const DEFAULT_DAEMON_TIMEOUT_S = 8;

// Built when BURROW_DAEMON_TIMEOUT is set, not by every CLI start.
const Seconds = lazySchema(() => v.pipe(v.string(), v.trim(), v.decimal(), v.transform(Number), v.minValue(0.1), v.maxValue(86_400)));

/** The last value parsed: every request asks twice (call() first, then its deadline). */
let parsedTimeout: { raw: string; ms: number } | null = null;

/** BURROW_DAEMON_TIMEOUT in ms; a value that is not a number of seconds is refused in one line. */
export function daemonTimeoutMs(env: Record<string, string | undefined> = process.env): number {
  const raw = env.BURROW_DAEMON_TIMEOUT;
  if (raw === undefined || raw === "") return DEFAULT_DAEMON_TIMEOUT_S * 1000;
  if (parsedTimeout?.raw === raw) return parsedTimeout.ms;
  const r = v.safeParse(Seconds, raw);
  if (!r.success)
    throw new BurrowError(
      `BURROW_DAEMON_TIMEOUT must be a number of seconds from 0.1 to 86400, such as ${DEFAULT_DAEMON_TIMEOUT_S} (got ${JSON.stringify(raw)})`,
      {
        kind: "bad-input",
      },
    );
  parsedTimeout = { raw, ms: r.output * 1000 };
  return parsedTimeout.ms;
}

/** The daemon's pid as its state lock names it, when it holds that lock. */
function daemonPid(p: Paths): number | null {
  const owner = stateLockOwner(p.stateDir);
  return owner ? owner : null;
}

/** Stopped by a signal (T) or by a tracer (t). */
export function isStopped(pid: number): boolean {
  const s = processState(pid);
  return s === "T" || s === "t";
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

/** Thrown when the daemon answered nothing for the whole bound (or is stopped). */
export class DaemonSilent extends BurrowError {}

/** The one line for a daemon that did not answer within `ms`. */
export function daemonSilentError(p: Paths, ms: number): DaemonSilent {
  const pid = daemonPid(p);
  const who = pid ? `the burrow daemon (pid ${pid})` : "the burrow daemon";
  const P = pid ?? "PID";
  const why =
    pid && isStopped(pid)
      ? `it is stopped: resume it with "kill -CONT ${P}"`
      : `it may be stopped (kill -CONT ${P}) or hung (kill ${P}: the next command starts a new one, which adopts the sandboxes)`;
  return new DaemonSilent(`${who} has not answered on ${controlSocket(p)} in ${seconds(ms)}; ${why} (BURROW_DAEMON_TIMEOUT sets the wait)`, {
    kind: "daemon",
  });
}

/** A stopped daemon is known at once (a CLI waiting to start one need not wait the whole bound). */
export function refuseIfDaemonStopped(p: Paths): void {
  const pid = daemonPid(p);
  if (pid && isStopped(pid))
    throw new DaemonSilent(`the burrow daemon (pid ${pid}) is stopped and cannot answer on ${controlSocket(p)}: resume it with "kill -CONT ${pid}"`, {
      kind: "daemon",
    });
}

/**
 * Runs `request` (given an AbortSignal for its fetch) under the liveness
 * bound. Rejects with DaemonSilent when the daemon answered nothing, neither
 * the request nor a ping on another connection, for the whole bound.
 */
export async function withDaemonDeadline<T>(p: Paths, request: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const bound = daemonTimeoutMs();
  const abort = new AbortController();
  let lastHeard = Date.now();
  let pinging = false;
  let silent: DaemonSilent | null = null;
  // Made with the first ping: aborting a controller makes an AbortError with
  // its stack (~0.1 ms), three times a run when every call had one.
  const pings: { ctl: AbortController | null } = { ctl: null };
  const sock = controlSocket(p);
  const tick = setInterval(
    () => {
      const quiet = Date.now() - lastHeard;
      if (quiet >= bound) {
        clearInterval(tick);
        silent = daemonSilentError(p, bound);
        abort.abort(silent);
        return;
      }
      if (pinging || quiet < bound / 4) return;
      // The request's own connection was checked; a ping's is another one, so its listener is checked too (once).
      if (!pings.ctl) {
        try {
          if (checkControlSocket(sock) === "absent") return;
        } catch {
          return;
        }
      }
      pinging = true;
      pings.ctl ??= new AbortController();
      // Any HTTP answer counts (even a refusal): the daemon is not stuck.
      fetch("http://burrow/ping", {
        unix: sock,
        method: "POST",
        body: "{}",
        headers: { "content-type": "application/json" },
        signal: AbortSignal.any([pings.ctl.signal, AbortSignal.timeout(bound)]),
      } as RequestInit)
        .then(async (res) => {
          await res.arrayBuffer();
          lastHeard = Date.now();
        })
        .catch(() => {})
        .finally(() => (pinging = false));
    },
    Math.max(25, Math.min(500, bound / 16)),
  );
  try {
    return await request(abort.signal);
  } catch (e) {
    if (silent) throw silent;
    throw e;
  } finally {
    clearInterval(tick);
    pings.ctl?.abort();
  }
}

/** The longest a CLI waits for another one to finish starting the daemon: that start's own bounds, with room. */
const START_LOCK_WAIT_MS = 60_000;

/**
 * Takes daemon.lock without ever blocking the event loop (a blocking flock
 * could not be given up on): the CLI that holds it may itself be waiting on
 * a daemon that was stopped, or be stopped. Refuses in one line when the
 * daemon or the lock's holder is stopped, or after START_LOCK_WAIT_MS.
 */
export async function takeDaemonLock(fd: number, p: Paths): Promise<void> {
  const until = Date.now() + START_LOCK_WAIT_MS;
  for (let i = 0; ; i++) {
    try {
      flock(fd, LOCK.EX | LOCK.NB);
      return;
    } catch (e) {
      if (!isSysError(e, "EAGAIN")) throw e;
    }
    if (i % 10 === 0) {
      refuseIfDaemonStopped(p);
      const holder = flockHolder(fd);
      const lock = `${p.runtimeDir}/daemon.lock`;
      if (holder && isStopped(holder))
        throw new BurrowError(
          `another burrow command (pid ${holder}) holds ${lock} and is stopped: resume it (kill -CONT ${holder}) or end it (kill ${holder})`,
          {
            kind: "daemon",
          },
        );
      if (Date.now() > until)
        throw new BurrowError(
          `another burrow command${holder ? ` (pid ${holder})` : ""} has held ${lock} for ${START_LOCK_WAIT_MS / 1000} s while starting the daemon; see ${p.runtimeDir}/daemon.log${holder ? `, or end it (kill ${holder})` : ""}`,
          { kind: "daemon" },
        );
    }
    await Bun.sleep(20);
  }
}
