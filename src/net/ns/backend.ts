// --network ns:PATH: joins a network namespace someone else made.
import { statSync } from "node:fs";
import { BurrowError } from "../../errors.ts";
import type { NetworkBackend } from "../backend.ts";
import { quote } from "../../quote.ts";
import { CLONE, close, namespaceFile } from "../../sys/ns.ts";

const ACCEPTED = "give a file such as /run/netns/NAME or /proc/PID/ns/net";

const TYPE_NAMES: Record<number, string> = {
  [CLONE.NEWNS]: "mount",
  [CLONE.NEWCGROUP]: "cgroup",
  [CLONE.NEWUTS]: "uts",
  [CLONE.NEWIPC]: "ipc",
  [CLONE.NEWUSER]: "user",
  [CLONE.NEWPID]: "pid",
};

/** What the file is, for the refusal: stat only looks (a FIFO is never opened). */
function kindOf(path: string): string {
  try {
    const st = statSync(path);
    if (st.isFIFO()) return "a FIFO";
    if (st.isSocket()) return "a socket";
    if (st.isDirectory()) return "a directory";
    if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
    if (st.isFile()) return "a regular file";
  } catch {}
  return "no namespace file";
}

/**
 * Refuses, in one line, a path that is not a network namespace this daemon
 * may join. The path comes from a request: it is only looked at (O_PATH,
 * fstatfs), never opened in a way that could block the daemon (issue 19
 * item 5: a FIFO given here hung the daemon's main thread in open()).
 */
export function checkNetnsPath(path: string): void {
  const r = namespaceFile(path, CLONE.NEWNET);
  if ("fd" in r) {
    close(r.fd);
    return;
  }
  const p = `network namespace path ${quote(path)}`;
  let msg: string;
  switch (r.why) {
    case "absent":
      msg = `${p} does not exist: ${ACCEPTED}`;
      break;
    case "denied":
      msg = `${p} cannot be opened: permission denied (another user's process, or a directory burrow may not search): ${ACCEPTED} that you own`;
      break;
    case "not-namespace":
      msg = `${p} is not a network namespace (it is ${kindOf(path)}): ${ACCEPTED}`;
      break;
    case "other-type":
      msg = `${p} is not a network namespace (it is ${r.type !== null && TYPE_NAMES[r.type] ? `a ${TYPE_NAMES[r.type]}` : "another kind of"} namespace): ${ACCEPTED}`;
      break;
    case "not-owned":
      msg = `${p} belongs to a user namespace burrow has no rights in (the host's, or another user's): rootless, burrow can join only network namespaces made inside its own user namespace (another sandbox's, or one made under burrow unshare)`;
      break;
    default:
      msg = `${p} cannot be checked (${r.detail}): ${ACCEPTED}`;
  }
  throw new BurrowError(msg, { kind: "bad-input" });
}

export const nsPathBackend: NetworkBackend<"ns"> = {
  kind: "ns",
  etc: "network",
  bridge: false,
  entersNetns: true,
  plan(mode) {
    checkNetnsPath(mode.path);
    return { newNet: false, joinNet: mode.path };
  },
  ports: () => ({ refuse: "-p cannot be used with --network ns: the sandbox has no network burrow can forward to" }),
};
