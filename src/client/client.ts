// CLI side of the control protocol: HTTP over the control socket, and the
// daemon (and, rootless, the holder) started on demand when none answers
// (src/client/start-daemon.ts, loaded then).
import { BurrowError, EXIT, isErrorKind } from "../errors.ts";
import { controlSocket, resolvePaths, type Paths } from "../paths.ts";
import * as v from "valibot";
import type { Op, OpArgs } from "../protocol.ts";
import type { Reply } from "../replies.ts";
import { UntrustedPath, checkPrivateFile, connectControlSocket, ensurePrivateDir } from "./trust.ts";
import { replaceOtherDaemon } from "./upgrade.ts";
import { DaemonSilent, daemonTimeoutMs, refuseIfDaemonStopped, withDaemonDeadline } from "./deadline.ts";
import { postUnix, sendUnix, type UnixReply } from "./unix-http.ts";

let cachedPaths: Paths | null = null;
export function paths(): Paths {
  return (cachedPaths ??= resolvePaths());
}

class Unreachable extends Error {}

/** Set once the runtime dir and the socket file passed trust.ts (each request's connection checks the listener: connectDaemon). */
let verified = false;

/**
 * Checks the path to the daemon before anything is sent over it: nothing,
 * not even a ping, goes to a socket in a directory others control or to a
 * listener that is not the user's own (issue 10 item 3).
 */
function verifyDaemon(): void {
  if (verified) return;
  const p = paths();
  ensurePrivateDir(p.runtimeDir);
  if (!checkPrivateFile(controlSocket(p), "socket")) throw new Unreachable("no daemon listening");
  verified = true;
}

/** The connection a request goes over: its listener checked on it (trust.ts); none there is Unreachable. */
function connectDaemon(sock: string): number {
  const fd = connectControlSocket(sock);
  if (fd === null) throw new Unreachable("no daemon listening");
  return fd;
}

/** True when a daemon socket exists on a path that passed trust.ts; throws UntrustedPath otherwise. */
function daemonPathTrusted(): boolean {
  try {
    verifyDaemon();
    return true;
  } catch (e) {
    if (e instanceof Unreachable) return false;
    throw e;
  }
}

/**
 * The reply schemas (src/replies.ts, and through it the enter target's):
 * loaded while the first request is answered, once it is in the socket
 * (loaded as it went out, they held it back ~0.5 ms).
 */
let replies: Promise<typeof import("../replies.ts")> | null = null;
const loadReplies = () => (replies ??= import("../replies.ts"));

/** What a caller may ask of call() besides the request. */
export interface CallOptions {
  /**
   * Runs once the request is in the control socket: work the caller needs
   * only after the reply (run's foreground module) starts there, not ahead
   * of the request's bytes (it held a create back ~0.7 ms).
   */
  onSent?: () => void;
}

async function rawCall(op: string, args: unknown, opts: CallOptions = {}): Promise<unknown> {
  verifyDaemon();
  // Bounded by the daemon answering at all, not by how long the request
  // takes (src/client/deadline.ts).
  const { res, body } = await withDaemonDeadline(paths(), async (signal) => {
    let res: UnixReply;
    try {
      res = await postUnix(controlSocket(paths()), `/${op}`, JSON.stringify(args ?? {}), {
        signal,
        connect: connectDaemon,
        onSent: () => {
          // The op's reply schema is built while the daemon works, not after its answer.
          loadReplies().then(
            (m) => m.replyOf(op as Op),
            () => {},
          );
          opts.onSent?.();
        },
      });
    } catch (e) {
      if (signal.aborted || e instanceof UntrustedPath) throw e;
      verified = false;
      throw new Unreachable(String(e));
    }
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {}
    return { res, body };
  });
  const { ErrorReply, replyOf, unexpectedReply } = await loadReplies();
  if (res.status < 200 || res.status > 299) {
    const err = v.safeParse(ErrorReply, body);
    if (!err.success) throw new BurrowError(`the daemon failed with status ${res.status} and no readable error`, { kind: "protocol" });
    // A kind this CLI does not know (another version's daemon) is kept generic.
    throw new BurrowError(err.output.error, { kind: isErrorKind(err.output.kind) ? err.output.kind : "error", exitCode: err.output.exitCode ?? EXIT.burrow });
  }
  const reply = v.safeParse(replyOf(op as Op), body);
  if (!reply.success) throw unexpectedReply(op as Op, reply.issues);
  return reply.output;
}

/**
 * Sends `op` to the daemon this CLI already talks to and does not wait for
 * its answer: true once the whole request is in the daemon's socket, over
 * a connection checked as call()'s are. False when it could not be sent
 * (no daemon, a socket that fails the trust checks, a full socket): the
 * caller calls instead, which starts a daemon if need be. A request sent
 * and then refused by the daemon (another user connected meanwhile) is not
 * seen here. For a report whose answer nothing needs (run's exit report
 * when nothing of the command is left and the daemon has its started
 * report, src/cli/run.ts: its reap releases a sandbox whose report is lost).
 */
export function notify<O extends Op>(op: O, args: OpArgs<O>): boolean {
  try {
    verifyDaemon();
    return sendUnix(controlSocket(paths()), `/${op}`, JSON.stringify(args ?? {}), connectDaemon);
  } catch {
    return false;
  }
}

let versionChecked = false;

export async function call<O extends Op>(op: O, args: OpArgs<O>, opts: CallOptions = {}): Promise<Reply<O>> {
  // A bad BURROW_DAEMON_TIMEOUT is refused before any daemon is started or waited for.
  daemonTimeoutMs();
  if (!versionChecked) {
    versionChecked = true;
    // The version check talks to the daemon too: only over a trusted path.
    if (daemonPathTrusted()) await replaceOtherDaemon(paths());
  }
  try {
    return (await rawCall(op, args, opts)) as Reply<O>;
  } catch (e) {
    if (!(e instanceof Unreachable)) throw e;
  }
  // Holder and daemon started (src/client/start-daemon.ts): loaded only when
  // none answers, not by every CLI start (issue 17).
  await (await import("./start-daemon.ts")).ensureDaemon();
  return rawCall(op, args, opts) as Promise<Reply<O>>;
}

/**
 * The reply of a daemon that is already running, or null when none is: never
 * starts one (shell completion asks for names on every TAB).
 */
export async function callIfRunning<O extends Op>(op: O, args: OpArgs<O>): Promise<Reply<O> | null> {
  daemonTimeoutMs();
  try {
    return (await rawCall(op, args)) as Reply<O>;
  } catch (e) {
    if (e instanceof Unreachable) return null;
    throw e;
  }
}

/**
 * The daemon's pid, or null when none answers. `checkStopped` (the default)
 * first refuses a daemon that is stopped; a caller polling every 2 ms asks
 * for that check on every tenth call only (it reads the state lock and
 * /proc/PID/stat: the wait for a starting daemon paid it ~500 times a second).
 */
export async function ping(checkStopped = true): Promise<number | null> {
  // A daemon that holds the state's lock but is stopped would neither
  // answer nor let go: said at once, wherever the CLI waits for one.
  if (checkStopped) refuseIfDaemonStopped(paths());
  try {
    return ((await rawCall("ping", {})) as Reply<"ping">).pid;
  } catch (e) {
    // A trust refusal is the answer, not a daemon still starting; nor is
    // a daemon that is there but does not answer (stopped, hung).
    if (e instanceof UntrustedPath || e instanceof DaemonSilent) throw e;
    return null;
  }
}
