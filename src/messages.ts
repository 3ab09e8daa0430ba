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
// plain types on purpose; see that file. Nor how a process joins a sandbox
// (src/enter-messages.ts): a `run` first needs it in the create's reply.
import * as v from "valibot";
import { BurrowError } from "./errors.ts";

/** One line per issue, each with its dotted path (STYLE.md #8). */
export function formatIssues(issues: v.BaseIssue<unknown>[]): string {
  return issues
    .map((i) => {
      const path = v.getDotPath(i);
      return path ? `${path}: ${i.message}` : i.message;
    })
    .join("; ");
}

/**
 * A schema built the first time something is parsed with it, not when its
 * module loads: every CLI start loads this module (through src/paths.ts),
 * and valibot's constructors cost it ~0.3 ms for schemas a warm `run`
 * never parses with (issue 17).
 */
export function lazySchema<S extends v.GenericSchema>(build: () => S): v.LazySchema<S> {
  let built: S | undefined;
  return v.lazy(() => (built ??= build()));
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
export const PathsMessage = lazySchema(() =>
  v.object({
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
  }),
);

// ---------------------------------------------------------------- holder
/** RUNTIME_DIR/holder.json: the rootless session's holder, written by the CLI that started it. */
export const HolderFile = lazySchema(() =>
  v.object({
    pid: v.pipe(v.number(), v.integer(), v.minValue(1)),
    startTime: v.string(),
    userns: v.string(),
    mntns: v.string(),
    /** "podman": the holder joined podman 5's pause process's user namespace (src/podman-pause.ts). */
    map: v.picklist(["subid", "single", "podman"]),
  }),
);
export type HolderInfo = v.InferOutput<typeof HolderFile>;

/** RUNTIME_DIR/supervisor.json: the rootful daemon's supervisor, written by the CLI that started it (src/client/root-supervisor.ts). */
export const SupervisorFile = lazySchema(() =>
  v.object({
    pid: v.pipe(v.number(), v.integer(), v.minValue(1)),
    startTime: v.string(),
  }),
);
export type SupervisorInfo = v.InferOutput<typeof SupervisorFile>;
