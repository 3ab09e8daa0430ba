// The small JSON records burrow keeps in its private runtime and state
// directories (holder.json, supervisor.json, cni/rootless-netns.json): read
// with O_NOFOLLOW, since in a private directory a symbolic link can only
// have been planted, and written
// atomically (a new file renamed over the old one) so a reader never sees
// half a file and two writers (the CLI, and the daemon rebuilding after a
// logout) never clash.
import { closeSync, constants, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type * as v from "valibot";
import { parseMessage } from "./messages.ts";

/** The record at `path` if it exists and matches `schema`; null otherwise (a file that does not parse is no record). */
export function readPrivateRecord<S extends v.GenericSchema>(path: string, schema: S, what: string): v.InferOutput<S> | null {
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return parseMessage(schema, readFileSync(fd, "utf8"), what);
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

/** Writes `value` as JSON to `dir/name`, mode 0600, through `dir/.name.PID`. */
export function writePrivateRecord(dir: string, name: string, value: unknown): void {
  const tmp = `${dir}/.${name}.${process.pid}`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeFileSync(fd, JSON.stringify(value));
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, `${dir}/${name}`);
}
