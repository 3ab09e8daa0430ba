// The daemon's own log (its stdout and stderr, RUNTIME_DIR/daemon.log).
// A logout's `rm -rf $XDG_RUNTIME_DIR` unlinks the file under the running
// daemon, which then wrote into a file nobody could read any more, while
// the supervisor's next `>>` made a new one 0644 (issue 19 item 10). The
// daemon notices within a second that its log is gone and opens the path
// again (0600, O_NOFOLLOW), onto fds 1 and 2, once its runtime directory is
// back (src/daemon/ownership.ts makes it again).
import { closeSync, fstatSync, readlinkSync, statSync } from "node:fs";
import { openPrivateAppend } from "../private-file.ts";
import { dup2 } from "../sys/proc.ts";

export class DaemonLogFile {
  constructor(private readonly path: string) {}

  /** True while fd 2 is this log file, or was before someone unlinked it: only then is it ours to reopen. */
  private stderrIsLog(): boolean {
    try {
      const target = readlinkSync("/proc/self/fd/2");
      return target === this.path || target === `${this.path} (deleted)`;
    } catch {
      return false;
    }
  }

  /** Reopens the log when its file was removed or replaced; returns true when it did. */
  check(): boolean {
    if (!this.stderrIsLog()) return false;
    try {
      const now = fstatSync(2);
      const there = statSync(this.path, { throwIfNoEntry: false });
      if (now.nlink > 0 && there && there.ino === now.ino && there.dev === now.dev) return false;
    } catch {
      return false;
    }
    let fd: number;
    try {
      // 0600, never through a link, made private again if a looser umask made it.
      fd = openPrivateAppend(this.path);
    } catch {
      // The runtime directory is not back yet (or a planted symlink): next time.
      return false;
    }
    try {
      if (!fstatSync(fd).isFile()) return false;
      dup2(fd, 1);
      dup2(fd, 2);
      return true;
    } finally {
      closeSync(fd);
    }
  }
}
