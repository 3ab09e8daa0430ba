// Messages between the CLI and the daemon: the single source of truth
// (STYLE.md #1, #8). Transport: HTTP over the control unix socket, one
// POST /<op> per request with a JSON body validated here on arrival.
import * as v from "valibot";
import { quote } from "./quote.ts";
import { EgressPolicy } from "./egress/policy.ts";

/** Names refused because they look like an id (docs/decisions.md "Names"). */
export const ID_SHAPED_NAME = /^[0-9a-f]{12,64}$/;

export const Name = v.pipe(
  v.string(),
  v.regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, (i) => `invalid name ${quote(i.input)}: names start with a letter or digit and contain only letters, digits, _ . -`),
  v.maxLength(253, (i) => `invalid name ${quote(i.input)}: it is ${String(i.input).length} characters long; the limit is 253`),
  // A name shaped like an id (ps shows 12 hex digits, inspect 64) could pass
  // for another sandbox's id or short id: `rm -f ID` would find the impostor.
  v.check(
    (name) => !ID_SHAPED_NAME.test(name),
    (i) =>
      `invalid name ${quote(i.input)}: 12 to 64 lowercase hex digits is the shape of a sandbox id, so it could pass for another sandbox's id; add a letter from g-z or a "-"`,
  ),
);

import { enterSchemas } from "./enter-messages.ts";

export const CreateRequest = v.object({
  name: v.optional(Name),
  hostname: v.optional(v.string()),
  network: v.optional(v.string()),
  ports: v.optional(v.array(v.string()), []),
  dns: v.optional(v.array(v.string()), []),
  ip: v.optional(v.string()),
  mac: v.optional(v.string()),
  aliases: v.optional(v.array(v.string()), []),
  rm: v.optional(v.boolean(), false),
  detach: v.optional(v.boolean(), false),
  /** --restart as given (src/sandbox/restart-policy.ts parses it). */
  restart: v.optional(v.string()),
  argv: v.pipe(v.array(v.string()), v.minLength(1, "a command to run is required")),
  cwd: v.optional(v.string(), "/"),
  env: v.optional(v.record(v.string(), v.string()), {}),
  labels: v.optional(v.record(v.string(), v.string()), {}),
  // run -t / -w / --user (src/cli/_process-flags.ts); absent: as before.
  tty: v.optional(v.boolean()),
  workdir: v.optional(v.string()),
  user: v.optional(enterSchemas().ProcessUser),
  // --cap-add / --cap-drop (names as given, ALL allowed) and --privileged:
  // resolved by the daemon (src/sandbox/capabilities.ts), refused there when unknown.
  capAdd: v.optional(v.array(v.string()), []),
  capDrop: v.optional(v.array(v.string()), []),
  privileged: v.optional(v.boolean(), false),
  /** --accelerate: host sockets for the command's TCP connects (docs/accelerate.md). */
  accelerate: v.optional(v.boolean(), false),
  /**
   * --allow-host, --allow-cidr, --deny-cidr, --egress-log-only as the CLI
   * parsed them (src/egress/policy.ts parseEgressFlags); absent: no policy,
   * today's behaviour. Checked again here: the spec keeps it for every start.
   */
  egress: v.optional(EgressPolicy),
  /**
   * A foreground run's enter step, spawned ahead, waits for its options on
   * a FIFO the CLI makes once this request is sent: RUNTIME_DIR/enter/REQUEST_ID
   * (src/paths.ts enterFifo). The daemon writes the options into it at the
   * end of the create when it is there, a FIFO of this user's with a reader
   * (src/daemon/enter-ahead.ts), and says so in the reply (`entered`);
   * otherwise the CLI writes them.
   */
  enterFifo: v.optional(v.literal(true)),
  /**
   * Made by the CLI, the same for every attempt of one `run`: a create sent
   * again after a broken connection gets the first attempt's answer
   * (src/daemon/requests-seen.ts).
   */
  requestId: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^[0-9a-f]{16,64}$/, (i) => `invalid request id ${quote(i.input)}: 16 to 64 hex digits`),
    ),
  ),
});
export type CreateRequest = v.InferOutput<typeof CreateRequest>;

// Defined in src/enter-messages.ts, which the __enter child loads without this whole module.
export type { EnterTarget } from "./enter-messages.ts";
export { formatIssues } from "./messages.ts";

export const Ref = v.object({ name: v.pipe(v.string(), v.minLength(1)) });
export const Started = v.object({ id: v.string(), pid: v.number() });
/**
 * pid: the command's, as `started` reports it. The CLI sends its exit
 * without waiting for started's reply; a daemon that has not had the
 * started report yet marks the sandbox started first (an older daemon
 * ignores the field).
 */
export const Exited = v.object({ id: v.string(), exitCode: v.number(), pid: v.optional(v.number()) });
export const Stop = v.object({ name: v.string(), timeout: v.optional(v.number(), 10) });
/** depend: remove the sandboxes that joined this one's network first (podman's rm --depend). */
export const Remove = v.object({ name: v.string(), force: v.optional(v.boolean(), false), depend: v.optional(v.boolean(), false) });
export const Restart = v.object({ name: v.string(), timeout: v.optional(v.number(), 10) });
/**
 * `burrow port add|rm NAME SPEC...`: -p values as `run` takes them (add), or
 * as `port rm` takes them (src/ports/live.ts parseRemoval). The daemon
 * parses them; nothing changes unless every one is accepted.
 */
export const PortChange = v.object({
  name: v.pipe(v.string(), v.minLength(1)),
  ports: v.pipe(v.array(v.string()), v.minLength(1, "give at least one port")),
});
export const List = v.object({ all: v.optional(v.boolean(), false) });
export const Empty = v.object({});

export const NetworkCreate = v.object({
  name: v.optional(v.string()),
  driver: v.optional(v.string()),
  subnets: v.optional(v.array(v.string()), []),
  gateway: v.optional(v.string()),
  ipRange: v.optional(v.string()),
  ipv6: v.optional(v.boolean(), false),
  internal: v.optional(v.boolean(), false),
  disableDns: v.optional(v.boolean(), false),
  labels: v.optional(v.record(v.string(), v.string()), {}),
});
export const NetworkRef = v.object({ name: v.pipe(v.string(), v.minLength(1)) });
export const NetworkRemove = v.object({ names: v.array(v.string()), force: v.optional(v.boolean(), false) });
export const NetworkConnect = v.object({ network: v.string(), sandbox: v.string(), aliases: v.optional(v.array(v.string()), []) });
export const NetworkDisconnect = v.object({ network: v.string(), sandbox: v.string() });
export const NetworkReload = v.object({ sandboxes: v.array(v.string()), all: v.optional(v.boolean(), false) });

export const Events = v.object({ since: v.optional(v.number(), 0) });
export const Stats = v.object({ names: v.array(v.string()) });

export const Ops = {
  create: CreateRequest,
  started: Started,
  exited: Exited,
  list: List,
  inspect: Ref,
  enter: Ref,
  logs: Ref,
  port: Ref,
  portAdd: PortChange,
  portRm: PortChange,
  stop: Stop,
  rm: Remove,
  start: Ref,
  restart: Restart,
  wait: Ref,
  info: Empty,
  ping: Empty,
  events: Events,
  stats: Stats,
  networkCreate: NetworkCreate,
  networkList: Empty,
  networkInspect: NetworkRef,
  networkRemove: NetworkRemove,
  networkPrune: Empty,
  networkConnect: NetworkConnect,
  networkDisconnect: NetworkDisconnect,
  networkReload: NetworkReload,
} as const;
export type Op = keyof typeof Ops;
export type OpArgs<O extends Op> = v.InferInput<(typeof Ops)[O]>;

// The replies, and the handler table typed by them: src/replies.ts (the CLI
// loads that module alone, not the request schemas here).
export { ErrorReply, type Handlers, type Reply, replyOf } from "./replies.ts";
