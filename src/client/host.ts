// What the CLI may ask of the process and the machine without importing
// src/sys itself (the CLI sits above the system layer): its user id, the
// environment for helper programs, and whether an error came from a
// system call (a SysError: shown as its one line, not as an internal error).
import { cleanEnv } from "../sys/env.ts";
import { SysError } from "../sys/libc.ts";
import { getuid } from "../sys/proc.ts";

export { cleanEnv, getuid };
// The open-file limit, raised and checked at the CLI's start (src/open-files.ts).
export { openFileLimit, raiseOpenFileLimit } from "../sys/rlimit.ts";
// Whether an fd is a terminal, without node:tty (its net and stream modules cost a start ~1 ms).
export { isTerminal } from "../sys/pty.ts";
// stat(2) without node:fs (1.4 ms of a start to load): -w's check on the path of run and exec.
export { statPath } from "../sys/files.ts";

// A foreground run's exit, its address space's teardown left to a child (src/sys/exit.ts).
export { exitLeavingTeardown, prepareExit } from "../sys/exit.ts";

export function isSystemError(e: unknown): e is Error {
  return e instanceof SysError;
}
