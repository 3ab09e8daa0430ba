// The options of a foreground run's enter step, written by the daemon at
// the end of the create (issue 17). The CLI spawns the enter helper while
// the daemon makes the sandbox; the helper waits for its options on a FIFO
// the CLI made in the runtime dir, named after the create's request id
// (src/sandbox/enter-helper.c -R, src/paths.ts enterFifo). Written from
// here, the command starts while the create's reply is still on its way to
// the CLI, instead of after the CLI has read and checked it
// (docs/decisions.md "The daemon sends the enter step its options").
// Daemon main thread.
//
// Nothing is written unless the name is a FIFO of this user's (not a
// link: lstat, then O_NOFOLLOW, then the opened file compared), it has a
// reader (O_NONBLOCK: ENXIO otherwise), and the block fits in one atomic
// pipe write. Anything else: the CLI writes the options itself, as it
// always could. Either way the name goes: the open ends keep the FIFO.
import { closeSync, constants, fstatSync, lstatSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import type { EnterTarget } from "../protocol.ts";
import { aheadWords, optionsBlock } from "../sandbox/enter-spawn.ts";
import { enterFifoDir } from "../paths.ts";
import type { Paths } from "../paths.ts";
import { log } from "../log.ts";
import { messageOf } from "../errors.ts";

/** PIPE_BUF on Linux: a write of at most this many bytes to a pipe is all or nothing. */
const PIPE_BUF = 4096;

/** Writes the options for `target` into the FIFO at `path`; true when the whole block is in it. */
export function sendEnterOptions(path: string, target: EnterTarget & { cwd?: string }): boolean {
  let fd: number | undefined;
  try {
    const st = lstatSync(path);
    if (!st.isFIFO() || st.uid !== process.getuid?.()) return refused(path, "not a FIFO of this user's");
    const block = optionsBlock(aheadWords(target));
    if (block.length > PIPE_BUF) return refused(path, `the options take ${block.length} bytes`);
    // Write only, never waiting for a reader (ENXIO instead), never through a link.
    fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY);
    const opened = fstatSync(fd);
    if (!opened.isFIFO() || opened.dev !== st.dev || opened.ino !== st.ino) return refused(path, "it changed while it was opened");
    if (writeSync(fd, block) !== block.length) return refused(path, "a short write");
    log.debug(`enter options written (${path})`);
    return true;
  } catch (e) {
    return refused(path, messageOf(e));
  } finally {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(path);
    } catch {}
  }
}

function refused(path: string, why: string): false {
  log.debug(`enter options left to the CLI (${path}): ${why}`);
  return false;
}

/** At the daemon's start: FIFOs of CLIs gone meanwhile (a live one's CLI writes its options itself). */
export function removeStaleEnterFifos(paths: Paths): void {
  rmSync(enterFifoDir(paths), { recursive: true, force: true });
}
