// `run -d -t`: the detached command's terminal. The daemon (main thread,
// session namespaces) holds the pty master for the command's lifetime and
// appends everything the command writes to the sandbox's log, which `logs`
// prints; as with podman's conmon, the output keeps its \r\n line ends.
import { closeSync, writeSync } from "node:fs";
import { openPrivateAppend } from "../private-file.ts";
import { openPty, readPty } from "../sys/pty.ts";

/** podman's size for a terminal nobody is attached to. */
const DETACHED_SIZE = { rows: 24, cols: 80 };

/**
 * Opens a pty whose output goes to `logPath`. Give `slave` to the child's
 * stdio, then call `spawned()` (which closes the daemon's slave fd so the
 * copy ends when the command's last fd on it closes), or `abort()` if the
 * spawn failed.
 */
export function ptyToLog(logPath: string): { slave: number; spawned(): void; abort(): void } {
  // Opened first: a log that cannot be opened (a planted symbolic link) fails before any pty exists.
  const log = openPrivateAppend(logPath);
  let pty: ReturnType<typeof openPty>;
  try {
    pty = openPty(DETACHED_SIZE);
  } catch (e) {
    closeSync(log);
    throw e;
  }
  const { master, slave } = pty;
  return {
    slave,
    spawned() {
      closeSync(slave);
      // Small appends on the event loop: a log file write does not block for long.
      const copy = readPty(master, (chunk) => {
        try {
          writeSync(log, chunk);
        } catch {}
      });
      void copy.done.finally(() => {
        closeSync(log);
        closeSync(master);
      });
    },
    abort() {
      closeSync(slave);
      closeSync(master);
      closeSync(log);
    },
  };
}
