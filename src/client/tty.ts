// `run -t` / `exec -t` in the foreground: the command gets a fresh pty
// (its controlling terminal, made so in the enter child), and the CLI relays
// between its own terminal and the pty master, as podman's attach does:
//   caller's tty (raw with -i) --stdin--> master --> slave: the command
//   command's output --> master --> our stdout
// SIGWINCH on our side becomes TIOCSWINSZ on the master, which the kernel
// turns into SIGWINCH for the command's foreground group. With -i the
// caller's terminal is raw, so ^C travels as a byte and the pty's line
// discipline sends SIGINT to the command; without -i, SIGINT reaches us and
// is forwarded.
import { closeSync } from "node:fs";
import type { EnterTarget } from "../protocol.ts";
import { getWinSize, makeRaw, openPty, readPty, restoreTerminal, setWinSize, writePty } from "../sys/pty.ts";
import { catchSignals, spawnEnter, waitForeground } from "./enter.ts";

/** After the command exited, how long output still held by its leftovers may keep coming. */
const DRAIN_MS = 1000;

function callerSize() {
  return getWinSize(1) ?? getWinSize(0) ?? getWinSize(2) ?? { rows: 24, cols: 80 };
}

export function spawnOnPty(target: EnterTarget & { cwd?: string }, argv: string[], env: Record<string, string | undefined>, opts: { interactive: boolean }) {
  const { master, slave } = openPty(callerSize());
  let child: Bun.Subprocess;
  const signals = catchSignals({ ownSession: true });
  try {
    // Our stderr as its fd 3: the enter child's own errors (a bad --user, a
    // missing command) reach the caller's stderr, not the pty.
    child = spawnEnter({ ...target, tty: true, errorFd: 3 }, argv, env, { stdin: slave, stdout: slave, stderr: slave, extra: [2] });
  } catch (e) {
    signals.release();
    closeSync(master);
    closeSync(slave);
    throw e;
  }
  // Only the command holds the slave now: its last close ends our reads (EIO).
  closeSync(slave);

  const output = readPty(master, (chunk) => process.stdout.write(chunk));

  const onResize = () => {
    try {
      setWinSize(master, callerSize());
    } catch {}
  };
  process.on("SIGWINCH", onResize);

  const stdin = process.stdin;
  let saved: Uint8Array | null = null;
  const restore = () => {
    if (saved) {
      try {
        restoreTerminal(0, saved);
      } catch {}
      saved = null;
    }
  };
  let writes: Promise<void> = Promise.resolve();
  let closed = false;
  const onInput = (chunk: Buffer) => {
    writes = writes.then(() => writePty(master, chunk, () => closed)).catch(() => {});
  };
  if (opts.interactive) {
    if (stdin.isTTY) saved = makeRaw(0);
    process.on("exit", restore);
    stdin.on("data", onInput);
    stdin.resume();
  }

  async function wait(): Promise<number> {
    const code = await waitForeground(child, signals);
    await Promise.race([output.done, Bun.sleep(DRAIN_MS)]);
    process.off("SIGWINCH", onResize);
    if (opts.interactive) {
      stdin.off("data", onInput);
      stdin.pause();
      restore();
      process.off("exit", restore);
    }
    output.stop();
    // Input nobody reads any more (a leftover holds the pty) is dropped.
    closed = true;
    await writes;
    try {
      closeSync(master);
    } catch {}
    return code;
  }
  return { child, wait };
}
