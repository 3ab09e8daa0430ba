// How many open files burrow needs (issue 19 item 10). Bun raises its soft
// limit to the hard one by itself, and every process burrow starts inherits
// both, so what matters is the hard limit of whoever started burrow (a shell
// after `ulimit -n 8` sets both). Below these floors burrow would fail
// half-way with EMFILE (a holder made with a single-id map because
// /etc/subuid could not be read, a slirp4netns that could not be spawned);
// it refuses up front instead, in one line.
//
// - The CLI: about 20 at its peak (a `run -p` that starts the holder and the
//   daemon: lock, log, pipes, pidfds, the socket); 32 leaves room.
// - The daemon: about 15 idle, about 3 more per sandbox with a published
//   port (listener, helper pipes, API socket) and 4 per forwarded
//   connection (two sockets, a splice pipe pair): 128 is a handful of
//   sandboxes with a few connections each, the least that is worth starting.
export const CLI_MIN_OPEN_FILES = 32;
export const DAEMON_MIN_OPEN_FILES = 128;
/** Rootful only (real root may raise its hard limit): what the daemon asks for, as systemd gives services. */
export const ROOTFUL_DAEMON_OPEN_FILES = 524_288;

export function openFilesRefusal(who: string, hard: number, min: number): string {
  return `the open-file limit is ${hard} (ulimit -Hn) and ${who} needs at least ${min}: raise it (ulimit -n ${Math.max(1024, min)} in the shell, or nofile in /etc/security/limits.conf) and run burrow again`;
}
