// The environment of re-exec'd roles and spawned programs.
//
// A re-exec'd burrow role must stay single-threaded until it has done its
// unshare/setns (DESIGN.md): these JSC settings keep the JIT and GC off
// helper threads. Every program burrow spawns gets them removed again, so the
// daemon keeps a normal, fast JIT and helpers see a clean environment.

export const SINGLE_THREAD_ENV: Record<string, string> = {
  BUN_JSC_useConcurrentJIT: "0",
  BUN_JSC_useConcurrentGC: "0",
  BUN_JSC_numberOfGCMarkers: "1",
  BUN_JSC_useWarmUpMarkedBlocks: "0",
};

/** process.env without the single-thread variables, plus `extra`. */
export function cleanEnv(extra: Record<string, string | undefined> = {}, base: Record<string, string | undefined> = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v === undefined || k in SINGLE_THREAD_ENV) continue;
    out[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** Environment for a re-exec'd single-threaded role. */
export function roleEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  return { ...cleanEnv(extra), ...SINGLE_THREAD_ENV };
}

/** argv[0] to re-exec this same burrow: the compiled binary, or bun + the bundle. */
export function selfCommand(): string[] {
  // In a `bun build --compile` binary, process.execPath is the binary itself and
  // process.argv[1] is a virtual "/$bunfs/..." path. /proc/self/exe, resolved
  // in the child before its exec, is the running binary even after an
  // upgrade replaced the file: a daemon never starts roles of another version.
  const script = process.argv[1] ?? "";
  if (script.startsWith("/$bunfs") || script === process.execPath || script === "") return ["/proc/self/exe"];
  return [process.execPath, script];
}

/** argv[0] for re-exec'd roles (Bun.spawn's argv0), so ps shows burrow's path. */
export const SELF_ARGV0 = process.execPath;
