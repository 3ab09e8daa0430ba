// How a process joins a sandbox: the target the daemon answers a create,
// start or enter with, and the enter step's request. Apart from
// src/messages.ts, and built on first use, because a `run` loads this
// module while the daemon answers (src/replies.ts, src/cli/_foreground.ts)
// and, most often, never checks a target: built before the request these
// schemas cost every CLI start ~0.6 ms (issue 17, docs/decisions.md
// "Loaded during the create"), and built while the daemon answered ~0.4.
import * as v from "valibot";
import { CAPABILITIES } from "./sandbox/capabilities.ts";

/**
 * The schemas, built on first use (enterSchemas): a `run` whose enter step
 * the daemon started with its options (the create's `entered`) never checks
 * a target, and building them was ~0.4 ms of every run's work while the
 * daemon answered (issue 17, docs/decisions.md "The enter target checked
 * where it is used").
 */
function build() {
  /** --user, resolved to ids by the CLI (src/sandbox/user.ts). */
  const Id = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xfffffffe));
  const ProcessUser = v.object({ uid: Id, gid: Id, groups: v.array(Id), home: v.optional(v.string()) });

  /**
   * A capability's name. Not v.picklist(CAPABILITIES): building that joins
   * all 41 names into its message with cold code, ~0.15 ms (issue 17).
   */
  const knownCapabilities: ReadonlySet<string> = new Set(CAPABILITIES);
  const Capability = v.custom<(typeof CAPABILITIES)[number]>(
    (c) => typeof c === "string" && knownCapabilities.has(c),
    (issue) => `Invalid capability: Received ${typeof issue.input === "string" ? JSON.stringify(issue.input) : typeof issue.input}`,
  );

  /** How a process joins a sandbox: the session namespaces first, then the pins. */
  const EnterTarget = v.object({
    session: v.object({ user: v.optional(v.string()), mnt: v.optional(v.string()) }),
    net: v.optional(v.string()),
    uts: v.optional(v.string()),
    mnt: v.optional(v.string()),
    /** stdin is a pty slave: make it the controlling terminal before execve. */
    tty: v.optional(v.boolean()),
    /** Where the enter child writes its own errors (closed before execve); default 2. */
    errorFd: v.optional(v.pipe(v.number(), v.integer(), v.minValue(3))),
    /** An explicit -w: chdir there or fail (without it, a missing cwd falls back to /). */
    workdir: v.optional(v.string()),
    user: v.optional(ProcessUser),
    /**
     * The command's capabilities (bounding, permitted, effective), resolved at
     * create (src/sandbox/capabilities.ts). Absent: keep every capability
     * (`burrow unshare`, and sandboxes made before 0.3).
     */
    caps: v.optional(v.array(Capability)),
    /** Put the command in a Landlock domain of its own (src/sys/caps.ts); off with --privileged. */
    confine: v.optional(v.boolean()),
    /** --accelerate: the enter step installs the notify filter and hands its listener to the daemon here (docs/accelerate.md). */
    accelerate: v.optional(
      v.object({
        socket: v.pipe(v.string(), v.startsWith("/")),
        token: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)),
      }),
    ),
  });

  /** `burrow __enter REQUEST -- CMD...`: REQUEST is this, as JSON. */
  const EnterRequest = v.object({ ...EnterTarget.entries, cwd: v.optional(v.string()) });
  /** What the daemon answers a create or an enter with: the target, and the cwd of a sandbox's own command. */
  const EnterReply = v.looseObject({ ...EnterTarget.entries, cwd: v.optional(v.string()) });
  return { ProcessUser, EnterTarget, EnterRequest, EnterReply };
}

type Schemas = ReturnType<typeof build>;
let schemas: Schemas | undefined;

/** The enter schemas, built on the first call. */
export function enterSchemas(): Schemas {
  return (schemas ??= build());
}

export type ProcessUser = v.InferOutput<Schemas["ProcessUser"]>;
export type EnterTarget = v.InferOutput<Schemas["EnterTarget"]>;
export type EnterRequest = v.InferOutput<Schemas["EnterRequest"]>;

/**
 * A foreground run's enter request: the sandbox's target with the run's -w
 * and --user. One definition for both writers of a helper started ahead's
 * options, the CLI (src/cli/_foreground.ts) and the daemon
 * (src/daemon/create.ts, src/daemon/enter-ahead.ts).
 */
export function foregroundRequest<T extends EnterTarget & { cwd?: string }>(
  target: T,
  opts: { workdir?: string; user?: EnterTarget["user"] },
): T & Pick<EnterTarget, "workdir" | "user"> & { cwd?: string } {
  return { ...target, ...(opts.workdir ? { workdir: opts.workdir, cwd: opts.workdir } : {}), ...(opts.user ? { user: opts.user } : {}) };
}
