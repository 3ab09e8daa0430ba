// The holder role: keeps the user's rootless user + mount namespaces alive.
// Runs single-threaded (re-exec'd with SINGLE_THREAD_ENV), so unshare works.
//   1. unshare(USER|MNT)   2. tell the parent "1"   3. wait for "go" (maps
//   written)   4. execve `sleep infinity` as "burrow-holder": no Bun left.
import { openSync, readSync, writeSync } from "node:fs";
import { existsSync } from "node:fs";
import { CLONE, unshare } from "../sys/ns.ts";
import { dup2, execve } from "../sys/proc.ts";

export function holderMain(): never {
  try {
    unshare(CLONE.NEWUSER | CLONE.NEWNS);
  } catch (e) {
    writeSync(2, `burrow: cannot create the rootless user namespace: ${(e as Error).message}\n`);
    process.exit(1);
  }
  writeSync(1, "1\n");
  const buf = Buffer.alloc(8);
  const n = readSync(0, buf, 0, buf.length, null);
  if (buf.toString("utf8", 0, n).trim() !== "go") process.exit(1);
  const devnull = openSync("/dev/null", "r+");
  for (const fd of [0, 1, 2]) dup2(devnull, fd);
  const sleep = existsSync("/usr/bin/sleep") ? "/usr/bin/sleep" : "/bin/sleep";
  execve(sleep, ["burrow-holder", "infinity"], { PATH: "/usr/bin:/bin" });
}
