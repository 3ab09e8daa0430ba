// podman 5's pause process: the process that keeps rootless podman's user
// and mount namespaces (docs/podman-rootless-netns.md §3). A rootless
// holder joins its user namespace instead of making one of its own when
// podman 5 or later is installed (src/userns/podman-join.ts), so that
// burrow's sandboxes and podman's rootless network namespace have one
// owner: only then can netavark, run in podman's namespace, put a sandbox on
// podman's bridge (docs/netavark.md "Sharing podman's rootless network
// namespace"). burrow never writes pause.pid (podman would then mount into
// burrow's namespaces, and `podman system migrate` would kill the holder).
// Read by the CLI and by the daemon's network registry.
import { nodeFs } from "./lazy-node.ts";
import { nsId } from "./sys/ns.ts";
import { startTimeOf } from "./sys/processes.ts";

type Env = Record<string, string | undefined>;

/** podman's major version from `podman --version` ("podman version 5.8.6"), or null. */
export function podmanMajor(versionOutput: string): number | null {
  const m = /^podman(?:\.exe)? version (\d+)\.\d+/m.exec(versionOutput);
  return m ? Number(m[1]) : null;
}

/** Where podman 4 and 5 keep the pause process's pid (tmp_dir's default: $XDG_RUNTIME_DIR/libpod/tmp). */
export function pausePidFile(env: Env = process.env): string | null {
  return env.XDG_RUNTIME_DIR ? `${env.XDG_RUNTIME_DIR}/libpod/tmp/pause.pid` : null;
}

/**
 * The pause process's pid: decimal, as podman writes it (no newline), of a
 * live process of this process's own uid as this user namespace sees it
 * (the file is in the user's own runtime directory, but what it names is
 * checked before anyone joins it). Null otherwise.
 */
export function readPausePid(env: Env = process.env): number | null {
  const uid = process.getuid?.() ?? -1;
  const file = pausePidFile(env);
  if (!file) return null;
  let text: string;
  try {
    text = nodeFs().readFileSync(file, "utf8");
  } catch {
    return null;
  }
  if (!/^[1-9][0-9]{0,9}$/.test(text.trim())) return null;
  const pid = Number(text.trim());
  try {
    if (nodeFs().statSync(`/proc/${pid}`).uid !== uid || startTimeOf(pid) === null) return null;
  } catch {
    return null;
  }
  return pid;
}

/** The pause process whose user namespace this process is in (a daemon whose holder joined it), or null. */
export function sharedPause(env: Env = process.env): number | null {
  const pid = readPausePid(env);
  if (pid === null) return null;
  const own = nsId("/proc/self/ns/user");
  return own !== null && nsId(`/proc/${pid}/ns/user`) === own ? pid : null;
}
