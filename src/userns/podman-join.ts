// Whether a new rootless holder joins podman's user namespace, and which
// pause process it joins (src/podman-pause.ts says why). The CLI's side,
// under the daemon start lock (src/userns/session.ts).
import { podmanMajor, pausePidFile, readPausePid } from "../podman-pause.ts";
import { which } from "./idmap.ts";
import { runProcess } from "../run-process.ts";

type Env = Record<string, string | undefined>;

/** A podman command's exit status and output (its warnings about cgroups v1 quieted). */
async function run(argv: string[], env: Env, timeoutMs: number): Promise<{ code: number | null; stdout: string }> {
  const clean: Record<string, string> = {};
  for (const [k, val] of Object.entries(env)) if (val !== undefined) clean[k] = val;
  const r = await runProcess({ argv, env: { ...clean, PODMAN_IGNORE_CGROUPSV1_WARNING: "1" }, stdin: "", timeoutMs });
  return { code: r.exitCode, stdout: r.stdout };
}

/**
 * The pause process a new holder should join, or null (the holder then makes
 * a user namespace of its own, as before). podman 5 and later by default;
 * podman 4 only with BURROW_PODMAN_USERNS=1: podman 4 tears its rootless
 * network namespace down when its own last container stops, whoever else
 * uses it (docs/podman-rootless-netns.md §2), so sharing it takes a podman
 * container of burrow's kept on it (src/net/netavark/podman-netns.ts), which
 * shows in the user's `podman ps`: the user asks for that. `podman unshare
 * true` makes the pause process when there is none yet (or joins it),
 * exactly as any podman command would. BURROW_PODMAN_USERNS=0 turns this off.
 */
export async function pauseToJoin(env: Env = process.env): Promise<number | null> {
  if (env.BURROW_PODMAN_USERNS === "0" || !pausePidFile(env)) return null;
  const podman = which("podman");
  if (!podman) return null;
  const version = await run([podman, "--version"], env, 10_000);
  const major = version.code === 0 ? podmanMajor(version.stdout) : null;
  if (major === null || major < 4 || (major === 4 && env.BURROW_PODMAN_USERNS !== "1")) return null;
  const live = readPausePid(env);
  if (live !== null) return live;
  const made = await run([podman, "unshare", "true"], env, 30_000);
  return made.code === 0 ? readPausePid(env) : null;
}
