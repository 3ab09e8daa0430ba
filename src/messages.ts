// Messages between burrow's own processes and threads, other than CLI <->
// daemon (those are src/protocol.ts): the single source of truth for their
// shapes (STYLE.md #1, #8). Each is validated where it is received, with
// parseMessage(), since the other end may be another version of burrow (an
// upgrade while a daemon runs), a file someone edited, or a crash's leftover.
//
// Not here: the daemon's own threads' and helpers' messages, beside their
// two ends so that a CLI start builds none of their schemas (~0.7 ms of
// valibot with the replies' table, issue 17): the namespace Worker's
// (src/namespaces/messages.ts), the CNI runner's (src/net/cni/messages.ts),
// and the connector Worker's (src/ports/connector-protocol.ts), which stay
// plain types on purpose; see that file.
import * as v from "valibot";
import { BurrowError } from "./errors.ts";
import { CAPABILITIES } from "./sandbox/capabilities.ts";

/** One line per issue, each with its dotted path (STYLE.md #8). */
export function formatIssues(issues: v.BaseIssue<unknown>[]): string {
  return issues
    .map((i) => {
      const path = v.getDotPath(i);
      return path ? `${path}: ${i.message}` : i.message;
    })
    .join("; ");
}

/** Parses `json` (text, or a value already parsed) against `schema`; `what` names the message in the error. */
export function parseMessage<S extends v.GenericSchema>(schema: S, json: string | unknown, what: string): v.InferOutput<S> {
  let value: unknown = json;
  if (typeof json === "string") {
    try {
      value = JSON.parse(json);
    } catch (e) {
      throw new BurrowError(`${what} is not valid JSON: ${(e as Error).message}`, { kind: "protocol", cause: e });
    }
  }
  const r = v.safeParse(schema, value);
  if (!r.success) throw new BurrowError(`${what} is malformed: ${formatIssues(r.issues)}`, { kind: "protocol" });
  return r.output;
}

// ---------------------------------------------------------------- paths
/** Where burrow keeps things: computed by the CLI, handed to the daemon in BURROW_PATHS. */
export const PathsMessage = v.object({
  rootless: v.boolean(),
  /** The host uid of the user burrow serves. */
  uid: v.pipe(v.number(), v.integer(), v.minValue(0)),
  runtimeDir: v.pipe(v.string(), v.startsWith("/")),
  stateDir: v.pipe(v.string(), v.startsWith("/")),
  /** CNI network configs (podman v3 layout). */
  cniConfigDir: v.pipe(v.string(), v.startsWith("/")),
  /** podman 4-6's network files (netavark): podman's own directory unless BURROW_NETWORKS_DIR says otherwise. */
  networksDir: v.pipe(v.string(), v.startsWith("/")),
  /** netavark's --config (its firewall state, aardvark-dns's files). */
  netavarkDir: v.pipe(v.string(), v.startsWith("/")),
});

// ---------------------------------------------------------------- holder
/** RUNTIME_DIR/holder.json: the rootless session's holder, written by the CLI that started it. */
export const HolderFile = v.object({
  pid: v.pipe(v.number(), v.integer(), v.minValue(1)),
  startTime: v.string(),
  userns: v.string(),
  mntns: v.string(),
  map: v.picklist(["subid", "single"]),
});
export type HolderInfo = v.InferOutput<typeof HolderFile>;

/** RUNTIME_DIR/supervisor.json: the rootful daemon's supervisor, written by the CLI that started it (src/client/root-supervisor.ts). */
export const SupervisorFile = v.object({
  pid: v.pipe(v.number(), v.integer(), v.minValue(1)),
  startTime: v.string(),
});
export type SupervisorInfo = v.InferOutput<typeof SupervisorFile>;

// ---------------------------------------------------------------- enter
/** How a process joins a sandbox: the session namespaces first, then the pins. */
/** --user, resolved to ids by the CLI (src/sandbox/user.ts). */
const Id = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xfffffffe));
export const ProcessUser = v.object({ uid: Id, gid: Id, groups: v.array(Id), home: v.optional(v.string()) });

export const EnterTarget = v.object({
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
  caps: v.optional(v.array(v.picklist(CAPABILITIES))),
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
export type EnterTarget = v.InferOutput<typeof EnterTarget>;

/** `burrow __enter REQUEST -- CMD...`: REQUEST is this, as JSON. */
export const EnterRequest = v.object({ ...EnterTarget.entries, cwd: v.optional(v.string()) });
export type EnterRequest = v.InferOutput<typeof EnterRequest>;
