// The enter role: a re-exec'd single-threaded burrow that joins a sandbox and
// execve()s the user's command, so no Bun stays in the path.
// Rootless order: holder user ns -> holder mount ns (where pins are visible)
// -> open the pins -> sandbox net, uts, mount ns -> (-t) the pty on stdin
// becomes the controlling terminal -> own Landlock domain -> bounding set ->
// (--user) ids -> capabilities -> chdir -> execve.
import { accessSync, constants, readFileSync, statSync, writeSync } from "node:fs";
import { BurrowError, EXIT } from "../errors.ts";
import { type EnterRequest, enterSchemas } from "../enter-messages.ts";
import { parseMessage } from "../messages.ts";
import { CLONE, close, nsId, openRO, setns } from "../sys/ns.ts";
import { chdir, closeOnExec, execve, restoreDefaultSignals } from "../sys/proc.ts";
import { setIds } from "../sys/ids.ts";
import { makeControllingTerminal } from "../sys/pty.ts";
import { checkMapped, parseIdMap } from "./user.ts";
import { enterOwnLandlockDomain, limitBoundingSet, limitProcessCapabilities } from "../sys/caps.ts";
import { capabilityNumbers } from "./capabilities.ts";

/** Our own errors' fd: the caller's stderr even when stdio is a pty (EnterTarget.errorFd). */
let errorFd = 2;

function fail(code: number, msg: string): never {
  writeSync(errorFd, `Error: ${msg}\n`);
  process.exit(code);
}

/** PATH lookup the way a shell does it; returns null when nothing matches. */
export function lookPath(cmd: string, path: string): { path: string } | { error: "not-found" | "not-executable"; path: string } {
  if (cmd.includes("/")) {
    try {
      if (statSync(cmd).isDirectory()) return { error: "not-executable", path: cmd };
      accessSync(cmd, constants.X_OK);
      return { path: cmd };
    } catch (e) {
      return { error: (e as NodeJS.ErrnoException).code === "ENOENT" ? "not-found" : "not-executable", path: cmd };
    }
  }
  let denied: string | null = null;
  for (const dir of path.split(":")) {
    const full = `${dir || "."}/${cmd}`;
    try {
      const st = statSync(full);
      if (st.isDirectory()) continue;
      accessSync(full, constants.X_OK);
      return { path: full };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EACCES") denied ??= full;
    }
  }
  return denied ? { error: "not-executable", path: denied } : { error: "not-found", path: cmd };
}

function joinIfOther(path: string | undefined, kind: "user" | "mnt", nstype: number): void {
  if (!path) return;
  if (nsId(path) === nsId(`/proc/self/ns/${kind}`)) return;
  const fd = openRO(path);
  setns(fd, nstype, path);
  close(fd);
}

export function enterMain(argv: string[]): never {
  const sep = argv.indexOf("--");
  const cmd = sep >= 0 ? argv.slice(sep + 1) : [];
  let target: EnterRequest;
  try {
    target = parseMessage(enterSchemas().EnterRequest, argv[0] ?? "", "the __enter request");
  } catch (e) {
    fail(EXIT.burrow, (e as Error).message);
  }
  if (target.errorFd) errorFd = target.errorFd;
  if (!cmd.length) fail(EXIT.burrow, "no command given");
  try {
    joinIfOther(target.session.user, "user", CLONE.NEWUSER);
    joinIfOther(target.session.mnt, "mnt", CLONE.NEWNS);
    // Open every pin before joining the sandbox's mount namespace: the pins
    // are only visible in the session's.
    const joins = (
      [
        [target.net, CLONE.NEWNET],
        [target.uts, CLONE.NEWUTS],
        [target.mnt, CLONE.NEWNS],
      ] as const
    )
      .filter(([path]) => path)
      .map(([path, type]) => [openRO(path!), type, path!] as const);
    for (const [fd, type, path] of joins) {
      setns(fd, type, path);
      close(fd);
      // A pin handed down as an inherited fd (src/daemon/ownership.ts
      // pinsAsFds) is not the command's to keep.
      const inherited = /^\/proc\/self\/fd\/(\d+)$/.exec(path);
      if (inherited) close(Number(inherited[1]));
    }
  } catch (e) {
    fail(EXIT.burrow, `cannot enter the sandbox (is it still running?): ${(e as Error).message}`);
  }
  if (target.tty) {
    try {
      makeControllingTerminal(0);
    } catch (e) {
      fail(EXIT.burrow, `cannot give the command its terminal: ${(e as Error).message}`);
    }
  }
  // Before --user: both need capabilities the command may not keep.
  const keep = target.caps && capabilityNumbers(target.caps);
  try {
    if (target.confine) enterOwnLandlockDomain();
    if (keep) limitBoundingSet(keep);
  } catch (e) {
    fail(EXIT.burrow, `cannot confine the command: ${(e as Error).message}`);
  }
  if (target.user) {
    // The ids the command may take are those of the user namespace it is in
    // now (the holder's rootless, the host's rootful).
    try {
      const user = checkMapped(target.user, parseIdMap(readFileSync("/proc/self/uid_map", "utf8")), parseIdMap(readFileSync("/proc/self/gid_map", "utf8")));
      // With a single-id map the kernel forbids setgroups ("deny"); there
      // is only one group to be in then.
      const setgroups = readFileSync("/proc/self/setgroups", "utf8").trim() !== "deny";
      setIds(user.uid, user.gid, user.groups, { setgroups });
    } catch (e) {
      fail(EXIT.burrow, e instanceof BurrowError ? e.message : `cannot switch to --user ${target.user.uid}:${target.user.gid}: ${(e as Error).message}`);
    }
  }
  if (keep) {
    try {
      limitProcessCapabilities(keep);
    } catch (e) {
      fail(EXIT.burrow, `cannot set the command's capabilities: ${(e as Error).message}`);
    }
  }
  // After the switch, so the directory is checked with the user's rights.
  if (target.workdir) {
    try {
      chdir(target.workdir);
    } catch (e) {
      fail(EXIT.cannotInvoke, `cannot change to the working directory ${target.workdir}: ${(e as Error).message}`);
    }
  } else {
    try {
      chdir(target.cwd ?? "/");
    } catch {
      chdir("/");
    }
  }
  const env: Record<string, string> = {};
  for (const [k, val] of Object.entries(process.env)) {
    if (val !== undefined && !k.startsWith("BUN_JSC_")) env[k] = val;
  }
  const found = lookPath(cmd[0]!, env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if ("error" in found) {
    if (found.error === "not-found") fail(EXIT.notFound, `${cmd[0]}: executable file not found in $PATH: no such file or directory`);
    fail(EXIT.cannotInvoke, `${found.path}: permission denied: the file is not executable`);
  }
  // The command must not inherit the error fd: a success leaves it only the pty.
  if (errorFd !== 2) {
    try {
      closeOnExec(errorFd);
    } catch {}
  }
  // The C helper starts with default dispositions (Bun.spawn resets them); this Bun does not.
  restoreDefaultSignals();
  try {
    execve(found.path, cmd, env);
  } catch (e) {
    fail(EXIT.cannotInvoke, `cannot run ${cmd[0]}: ${(e as Error).message}`);
  }
}
