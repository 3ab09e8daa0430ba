// The launcher role: a single-threaded burrow that joins the holder's user
// and mount namespaces, then execve()s the daemon WITHOUT the single-thread
// JSC variables, so the daemon inherits the namespaces and keeps a normal JIT.
import { ROLES } from "../roles.ts";
import { cleanEnv } from "../sys/env.ts";
import { CLONE, join } from "../sys/ns.ts";
import { closeOnExec, execve } from "../sys/proc.ts";
import { writeSync } from "node:fs";

export function launcherMain(argv: string[]): never {
  const holderPid = argv[0];
  try {
    if (holderPid && holderPid !== "-") {
      join(`/proc/${holderPid}/ns/user`, CLONE.NEWUSER);
      join(`/proc/${holderPid}/ns/mnt`, CLONE.NEWNS);
    }
    // Started by the holder's supervisor (src/userns/supervisor.ts): fd 3
    // is the binary it exec'd us through; the daemon needs neither it nor
    // the script.
    const supervised = process.env.BURROW_SUPERVISED === "1";
    if (supervised) closeOnExec(3);
    // /proc/self/exe: this very binary, even if an upgrade replaced the file.
    execve(
      "/proc/self/exe",
      [process.execPath, ROLES.daemon],
      cleanEnv(supervised ? { BURROW_SUPERVISOR: undefined, BURROW_SUPERVISE_LOG: undefined, BURROW_SUPERVISE_EXIT: undefined } : {}),
    );
  } catch (e) {
    writeSync(2, `burrow: cannot start the daemon: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
