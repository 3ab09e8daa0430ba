// The holder role: keeps the user's rootless user + mount namespaces alive,
// and supervises the daemon (src/userns/supervisor.ts).
// Runs single-threaded (re-exec'd with SINGLE_THREAD_ENV), so unshare works.
//   1. unshare(USER|MNT), or, given BURROW_HOLDER_JOIN (podman 5's pause
//   process, src/podman-pause.ts), setns into its user namespace and
//   unshare(MNT)   2. tell the parent "1"   3. wait for "go MAP" (maps
//   written, or "podman")   4. execve /bin/sh running the supervisor as "burrow-holder":
//   no Bun left. Without BURROW_SUPERVISOR (never set by this burrow's CLI,
//   kept for a hand-started holder) it execs `sleep infinity` as before.
import { existsSync, openSync, readSync, writeSync } from "node:fs";
import { CLONE, join, unshare } from "../sys/ns.ts";
import { dup2, execve } from "../sys/proc.ts";

export function holderMain(): never {
  const pause = process.env.BURROW_HOLDER_JOIN;
  delete process.env.BURROW_HOLDER_JOIN;
  try {
    if (pause && /^[1-9][0-9]*$/.test(pause)) {
      // Its own mount namespace still: a copy of the host's, not podman's (where podman mounts its storage).
      join(`/proc/${pause}/ns/user`, CLONE.NEWUSER);
      unshare(CLONE.NEWNS);
    } else unshare(CLONE.NEWUSER | CLONE.NEWNS);
  } catch (e) {
    writeSync(2, `burrow: cannot ${pause ? "join podman's" : "create the"} rootless user namespace: ${(e as Error).message}\n`);
    process.exit(1);
  }
  writeSync(1, "1\n");
  const buf = Buffer.alloc(32);
  const n = readSync(0, buf, 0, buf.length, null);
  const [go, map] = buf.toString("utf8", 0, n).trim().split(" ");
  if (go !== "go") process.exit(1);
  const devnull = openSync("/dev/null", "r+");
  if (process.env.BURROW_SUPERVISOR) {
    // fd 3 is this very binary: the supervisor starts the daemon as
    // /proc/self/fd/3, so an upgrade that replaces or deletes the file
    // never makes it restart a daemon of another version.
    const exe = openSync("/proc/self/exe", "r");
    dup2(exe, 3);
    for (const fd of [0, 1, 2]) dup2(devnull, fd);
    const env = { ...process.env, BURROW_HOLDER_MAP: map ?? "subid" };
    execve("/bin/sh", ["burrow-holder", "-c", 'eval "$BURROW_SUPERVISOR"', "supervise", "/proc/self/fd/3", "__launch", "-"], env);
  }
  for (const fd of [0, 1, 2]) dup2(devnull, fd);
  const sleep = existsSync("/usr/bin/sleep") ? "/usr/bin/sleep" : "/bin/sleep";
  execve(sleep, ["burrow-holder", "infinity"], { PATH: "/usr/bin:/bin" });
}
