// The daemon's replies, checked by the CLI on arrival, and the handler
// table typed by them. Apart from src/protocol.ts (the requests, which the
// daemon checks) so that a CLI command loads only these schemas: the
// requests' include the egress policy's, whose module cost every CLI start
// about 1 ms (issue 17). Each reply's schema is built on first use
// (replyOf): a `run` checks three of the 27, and building the table at
// load was ~0.4 ms of every CLI start.
import * as v from "valibot";
import { BurrowError } from "./errors.ts";
import { type EnterTarget, enterSchemas } from "./enter-messages.ts";
import { formatIssues } from "./messages.ts";
import type { Op, Ops } from "./protocol.ts";

// Checked by the CLI on arrival. Views that only get printed
// (inspect, ps rows, conflists) are checked for their shape's outline.
// Functions, not schemas: each is called once, by replyOf.
const Done = () => v.looseObject({});
const IdName = () => v.looseObject({ id: v.string(), name: v.string() });
const PortRecordSchema = () => v.object({ hostIp: v.string(), hostPort: v.number(), containerPort: v.number(), protocol: v.picklist(["tcp", "udp"]) });
const Names = () => v.array(v.string());

const MAKERS = {
  // No enter target: a retried create whose sandbox has exited and gone since.
  // The target is an object here and checked where the CLI spawns with it
  // (enterTargetOf): a run whose enter step got its options from the daemon
  // (`entered`) never uses it, and its schema's build was ~0.4 ms of every
  // run (issue 17).
  create: () =>
    v.looseObject({
      id: v.string(),
      name: v.string(),
      enter: v.optional(v.looseObject({})),
      /** The daemon wrote the enter step's options into the FIFO of CreateRequest.enterFifo. */
      entered: v.optional(v.boolean()),
    }),
  started: Done,
  exited: Done,
  list: () =>
    v.array(
      v.object({
        Id: v.string(),
        Names: Names(),
        Command: Names(),
        Status: v.string(),
        State: v.string(),
        Pid: v.number(),
        ExitCode: v.number(),
        CreatedAt: v.string(),
        StartedAt: v.string(),
        Network: v.string(),
        Networks: v.optional(Names(), []),
        Labels: v.optional(v.record(v.string(), v.string()), {}),
        Ports: v.array(v.object({ host_ip: v.string(), host_port: v.number(), container_port: v.number(), protocol: v.string() })),
      }),
    ),
  // OciVersion named before Status only to keep podman's key order in the output (a loose object puts known keys first).
  inspect: () => v.looseObject({ Id: v.string(), Name: v.string(), State: v.looseObject({ OciVersion: v.optional(v.string()), Status: v.string() }) }),
  enter: () => v.looseObject({ id: v.string(), name: v.string(), enter: enterSchemas().EnterTarget }),
  logs: () => v.object({ path: v.string() }),
  port: () => v.looseObject({ id: v.string(), ports: v.array(PortRecordSchema()) }),
  // The mappings added (actual host ports) or removed.
  portAdd: () => v.object({ id: v.string(), name: v.string(), ports: v.array(PortRecordSchema()) }),
  portRm: () => v.object({ id: v.string(), name: v.string(), ports: v.array(PortRecordSchema()) }),
  stop: IdName,
  // removed: every sandbox removed, dependants (--depend) first; absent from an older daemon.
  rm: () => v.looseObject({ ...IdName().entries, removed: v.optional(v.array(IdName())) }),
  start: IdName,
  restart: IdName,
  wait: () => v.object({ id: v.string(), name: v.string(), exitCode: v.number() }),
  info: Done,
  ping: () => v.object({ pid: v.number() }),
  events: () =>
    v.array(
      v.object({
        seq: v.number(),
        time: v.string(),
        type: v.string(),
        id: v.nullable(v.string()),
        name: v.nullable(v.string()),
        attributes: v.record(v.string(), v.unknown()),
      }),
    ),
  stats: () =>
    v.array(v.looseObject({ ID: v.string(), Name: v.string(), PIDs: v.number(), MemUsage: v.number(), NetInput: v.number(), NetOutput: v.number() })),
  networkCreate: () => v.object({ name: v.string(), warnings: Names() }),
  networkList: () =>
    v.looseObject({
      networks: v.array(v.looseObject({ name: v.string(), id: v.string(), driver: v.string(), labels: v.optional(v.record(v.string(), v.string())) })),
      warnings: Names(),
    }),
  networkInspect: () => v.looseObject({ name: v.string() }),
  networkRemove: () => v.object({ removed: Names() }),
  networkPrune: () => v.object({ removed: Names() }),
  networkConnect: () => v.object({ id: v.string() }),
  networkDisconnect: () => v.object({ id: v.string() }),
  networkReload: () => v.object({ reloaded: Names(), errors: Names() }),
} as const satisfies Record<Op, () => v.GenericSchema>;

/** The schema of each op's reply. */
export type ReplySchemas = { [O in Op]: ReturnType<(typeof MAKERS)[O]> };
export type Reply<O extends Op> = v.InferOutput<ReplySchemas[O]>;

const built: Partial<ReplySchemas> = {};

/** The schema of `op`'s reply, built on its first use. */
export function replyOf<O extends Op>(op: O): ReplySchemas[O] {
  return ((built as Record<Op, v.GenericSchema>)[op] ??= MAKERS[op]()) as ReplySchemas[O];
}

/** The error for a reply of `op` that its schema refused. */
export function unexpectedReply(op: Op, issues: v.BaseIssue<unknown>[]): BurrowError {
  return new BurrowError(`the daemon's reply to ${op} is not what this burrow expects (${formatIssues(issues)}): is an older daemon still running?`, {
    kind: "protocol",
  });
}

/** A create's enter target, checked when the CLI is about to spawn with it (MAKERS.create says why not on arrival). */
export function enterTargetOf(raw: unknown): EnterTarget & { cwd?: string } {
  const r = v.safeParse(enterSchemas().EnterReply, raw);
  if (!r.success) throw unexpectedReply("create", r.issues);
  return r.output;
}

/** What a handler of op O may return: its reply's shape, or nothing for ops that reply with `{}`. */
// biome-ignore lint/suspicious/noConfusingVoidType: a handler of a `{}` reply is a function returning void, which `undefined` would not accept
type HandlerResult<O extends Op> = v.InferInput<ReplySchemas[O]> | (ReplySchemas[O] extends ReturnType<typeof Done> ? void : never);

/**
 * The daemon's operation table: one handler per op, taking the op's
 * validated request and returning its reply. src/daemon/main.ts builds it
 * with `satisfies Handlers`, so a handler whose result drifts from the
 * reply schema the CLI checks fails to compile.
 */
export type Handlers = { [O in Op]: (args: v.InferOutput<(typeof Ops)[O]>) => HandlerResult<O> | Promise<HandlerResult<O>> };

/** A failed request's body. */
export const ErrorReply = v.object({ error: v.string(), kind: v.optional(v.string()), exitCode: v.optional(v.number()) });
