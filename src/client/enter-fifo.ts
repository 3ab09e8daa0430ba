// The FIFO a foreground run's enter step, started ahead, reads its options
// from (CreateRequest.enterFifo): made by the CLI in its runtime dir once
// the create is sent, written by the daemon at the end of the create, or by
// the CLI when the daemon did not (src/daemon/enter-ahead.ts).
import { makeFifo, removeFile } from "../sys/files.ts";
import { close } from "../sys/ns.ts";
import { ensurePrivateDir } from "../private-file.ts";

/**
 * The FIFO at `path` (in the runtime dir, checked by the create's call
 * before it sent anything), open at both ends: [read, write]; null when it
 * cannot be made (the enter step then gets a pipe of its own, and the CLI
 * writes its options, as before).
 */
export function makeEnterFifo(path: string): [number, number] | null {
  try {
    ensurePrivateDir(path.slice(0, path.lastIndexOf("/")));
    return makeFifo(path);
  } catch {
    return null;
  }
}

/** Its name, once the create has answered: the open ends keep the FIFO (the daemon removes the name too once it wrote). */
export function forgetEnterFifo(path: string): void {
  try {
    removeFile(path);
  } catch {}
}

/** Both ends of an options FIFO or pipe no enter step will read. */
export function closeEnds(ends: readonly [number, number] | null): void {
  if (ends) for (const end of ends) close(end);
}
