// The daemon's supervisor (issue 10 item 5): a small POSIX shell script that
// starts the daemon as its child and starts it again at once when it dies of
// anything but a clean stop. So after `kill -9` of the daemon its published
// ports are back in the time a daemon takes to start, with nobody typing
// anything.
//
// Rootless, it is the holder's second job: after unshare and the id maps,
// the holder execve()s /bin/sh running SUPERVISOR_SCRIPT instead of `sleep
// infinity`. The shell keeps the namespaces alive exactly as sleep did (same
// pid, same namespaces: holder.json stays true). Rootful has no namespaces
// to keep: the CLI starts the same script as `burrow-supervisor`
// (src/client/root-supervisor.ts), which exits when its daemon stops cleanly.
//
// Why a shell and not Bun: the supervisor must stay small (the holder lives
// as long as the session; dash is ~1 MB RSS where an idle Bun is ~30 MB),
// and a shell starts no threads, so nothing of DESIGN.md's single-thread
// rule is at stake. The daemon is started through the launcher role
// (`__launch -`, already inside the namespaces when rootless), which gives
// it burrow's path as argv[0] and strips the single-thread JSC variables,
// as for any daemon start.
//
// This module is imported by the holder (single-threaded, before exec) and
// by the CLI: it must import nothing that starts threads.
import { nodeFs } from "../lazy-node.ts";

/** Exit codes the daemon uses to tell its supervisor not to restart it. */
export const DAEMON_EXIT = {
  /** Stopped on purpose (idle, SIGTERM): wait until a CLI asks again. */
  stopped: 0,
  /** Another daemon holds the state database's lock (EX_TEMPFAIL). */
  stateLocked: 75,
} as const;

/** $0 of the supervising shell, so a CLI can tell it from a `sleep infinity` holder of an older burrow. */
export const SUPERVISOR_MARK = "supervise";

/** argv[0] of each kind of supervisor: the rootless holder, and the rootful one. */
export const SUPERVISOR_ARGV0 = { holder: "burrow-holder", rootful: "burrow-supervisor" } as const;

/**
 * What the CLI adds to the holder's environment. The holder then execs
 * `/bin/sh -c 'eval "$BURROW_SUPERVISOR"' supervise /proc/self/fd/3 __launch -`
 * (src/userns/holder.ts): the script travels in the environment, so `ps`
 * shows one short line, not forty lines of shell.
 */
export function supervisorEnv(log: string, opts: { exitOnStop?: boolean } = {}): Record<string, string> {
  return {
    BURROW_SUPERVISOR: SUPERVISOR_SCRIPT,
    BURROW_SUPERVISE_LOG: log,
    BURROW_SUPERVISED: "1",
    ...(opts.exitOnStop ? { BURROW_SUPERVISE_EXIT: "1" } : {}),
  };
}

/** The line the supervisor logs when it stops restarting; the CLI waits for no daemon after it. */
export const SUPERVISOR_IDLE_LINE = "burrow supervisor: ";

/**
 * POSIX sh (dash). Positional parameters are the daemon's start command.
 * Environment: BURROW_SUPERVISE_LOG (the daemon's log file),
 * BURROW_SUPERVISE_EXIT (set: the rootful supervisor, see below).
 * - a daemon that exits 0 or 75 is not restarted (see DAEMON_EXIT);
 *   a holder whose first daemon exits 75 exits too (issue 19 item 2):
 *   another holder's daemon serves this state, so this holder's namespaces
 *   hold nothing and nobody would ever wake it;
 *   any other exit, a signal included, restarts it at once. After three
 *   ends in a row within 2 s of their start, a daemon killed by a signal
 *   is restarted once a second, and one that exited with an error (it
 *   cannot start at all) is not: the supervisor logs why.
 * - Rootless (the holder), it then waits for SIGUSR1 (sent by a CLI that
 *   found no daemon answering) and starts one again; the CLI that asked
 *   shows the daemon's own error. While no daemon runs it waits in open(2)
 *   of a FIFO in the runtime directory (.supervisor.fifo): no child
 *   process, no polling.
 * - Rootful (BURROW_SUPERVISE_EXIT), it exits instead: it keeps nothing
 *   alive, and the next burrow command starts a supervisor again. SIGTERM
 *   and SIGINT are passed on to the daemon (a clean stop) and the
 *   supervisor exits with it; nothing is restarted after them.
 * - SIGHUP (a logout's hangup) and SIGPIPE are ignored: the session outlives them.
 * - umask 077: a log it makes again after a logout is the user's alone (0600).
 * `wait` returns early (status > 128) when a trapped signal arrives; the
 * inner loop tells that from the daemon's own end with `kill -0`.
 */
export const SUPERVISOR_SCRIPT = `
umask 077
log=$BURROW_SUPERVISE_LOG
once=$BURROW_SUPERVISE_EXIT
want=1 fails=0 stop=0 pid= starts=0
trap 'want=1' USR1
trap '' HUP PIPE
[ -n "$once" ] && trap 'stop=1; [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null' TERM INT
while :; do
  [ "$stop" = 1 ] && exit 0
  if [ "$want" = 1 ]; then
    want=0
    mkdir -p -m 700 "\${log%/*}" 2>/dev/null
    read t0 _ </proc/uptime
    "$@" </dev/null >>"$log" 2>&1 &
    pid=$! starts=$((starts + 1))
    while :; do
      wait "$pid"; rc=$?
      kill -0 "$pid" 2>/dev/null || break
    done
    pid= want=0
    [ "$stop" = 1 ] && exit 0
    if [ "$rc" = 75 ] && [ "$starts" = 1 ] && [ -z "$once" ]; then
      echo "${SUPERVISOR_IDLE_LINE}another daemon is active for this state (status 75) before this holder ever had one: the holder exits" >>"$log" 2>/dev/null
      exit 0
    fi
    case $rc in
      0|75) fails=0
        if [ -n "$once" ]; then
          echo "${SUPERVISOR_IDLE_LINE}the daemon stopped (status $rc); the supervisor exits, the next burrow command starts both again" >>"$log" 2>/dev/null
        else
          echo "${SUPERVISOR_IDLE_LINE}the daemon stopped (status $rc); it starts again with the next burrow command" >>"$log" 2>/dev/null
        fi ;;
      *) read t1 _ </proc/uptime
        if [ $(( \${t1%.*} - \${t0%.*} )) -lt 2 ]; then fails=$((fails + 1)); else fails=0; fi
        if [ "$fails" -lt 3 ]; then want=1
        elif [ "$rc" -gt 128 ]; then sleep 1; want=1
        else fails=0
          echo "${SUPERVISOR_IDLE_LINE}the daemon failed (status $rc) three times at start; it starts again with the next burrow command" >>"$log" 2>/dev/null
        fi ;;
    esac
  elif [ -n "$once" ]; then
    exit 0
  else
    # Wait for SIGUSR1 with no child process (a child would outlive a
    # SIGKILLed holder): opening a FIFO that has no writer blocks until a
    # signal interrupts it. Should the FIFO be unusable, poll once a second.
    fifo=\${log%/*}/.supervisor.fifo
    [ -p "$fifo" ] || { rm -f "$fifo"; mkfifo -m 600 "$fifo"; } 2>/dev/null
    # (true, not the special built-in ":", whose failed redirection would end the shell)
    true <"$fifo" 2>/dev/null
    [ "$want" = 1 ] || sleep 1
  fi
done
`;

/**
 * True when `pid`'s command line is a supervisor of that kind: a supervising
 * holder (not an older burrow's `sleep infinity` one), or a rootful one.
 */
export function isSupervisor(pid: number, kind: keyof typeof SUPERVISOR_ARGV0 = "holder"): boolean {
  try {
    const argv = nodeFs().readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv[0] === SUPERVISOR_ARGV0[kind] && argv[1] === "-c" && argv[3] === SUPERVISOR_MARK;
  } catch {
    return false;
  }
}
