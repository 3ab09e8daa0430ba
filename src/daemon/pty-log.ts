// `run -d -t`: the detached command's terminal. The daemon (main thread,
// session namespaces) holds the pty master for the command's lifetime and
// hands everything the command writes to the sandbox's log writer
// (src/daemon/log-copy.ts), which `logs` prints; as with podman's conmon,
// the output keeps its \r\n line ends.
import { closeSync } from "node:fs";
import { openPty, readPty } from "../sys/pty.ts";

/** podman's size for a terminal nobody is attached to. */
const DETACHED_SIZE = { rows: 24, cols: 80 };

/**
 * Opens a pty whose output goes to `onChunk` (a promise back slows the
 * reading down to it); `close` is called once the copy ended. Give `slave`
 * to the child's stdio, then call `spawned()` (which closes the daemon's
 * slave fd so the copy ends when the command's last fd on it closes), or
 * `abort()` if the spawn failed.
 */
export function ptyToLog(
  onChunk: (chunk: Uint8Array) => unknown,
  close: () => void,
): { slave: number; spawned(): void; abort(): void; readonly done: Promise<void> } {
  const { master, slave } = openPty(DETACHED_SIZE);
  let done: Promise<void> = Promise.resolve();
  let started = false;
  return {
    slave,
    spawned() {
      started = true;
      closeSync(slave);
      const copy = readPty(master, (chunk) => {
        try {
          return onChunk(chunk);
        } catch {
          return undefined;
        }
      });
      done = copy.done.finally(() => {
        close();
        closeSync(master);
      });
    },
    abort() {
      // After spawned() the copy owns the master: it ends with the command's terminal.
      if (started) return;
      closeSync(slave);
      closeSync(master);
      close();
    },
    get done() {
      return done;
    },
  };
}
