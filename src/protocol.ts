// Messages between the CLI and the daemon: the single source of truth
// (STYLE.md #1, #8). Transport: HTTP over the control unix socket, one
// POST /<op> per request with a JSON body validated here on arrival.
import * as v from "valibot";

export const Name = v.pipe(
  v.string(),
  v.regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, "names start with a letter or digit and contain only letters, digits, _ . -"),
  v.maxLength(253),
);

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
  argv: v.pipe(v.array(v.string()), v.minLength(1, "a command to run is required")),
  cwd: v.optional(v.string(), "/"),
  env: v.optional(v.record(v.string(), v.string()), {}),
});
export type CreateRequest = v.InferOutput<typeof CreateRequest>;

/** How a process joins a sandbox: the session namespaces first, then the pins. */
export const EnterTarget = v.object({
  session: v.object({ user: v.optional(v.string()), mnt: v.optional(v.string()) }),
  net: v.optional(v.string()),
  uts: v.optional(v.string()),
  mnt: v.optional(v.string()),
});
export type EnterTarget = v.InferOutput<typeof EnterTarget>;

export const Ref = v.object({ name: v.pipe(v.string(), v.minLength(1)) });
export const Started = v.object({ id: v.string(), pid: v.number() });
export const Exited = v.object({ id: v.string(), exitCode: v.number() });
export const Stop = v.object({ name: v.string(), timeout: v.optional(v.number(), 10) });
export const Remove = v.object({ name: v.string(), force: v.optional(v.boolean(), false) });
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
  stop: Stop,
  rm: Remove,
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

/** One line per validation issue, with a dotted path (STYLE.md #8). */
export function formatIssues(issues: v.BaseIssue<unknown>[]): string {
  return issues
    .map((i) => {
      const path = v.getDotPath(i);
      return path ? `${path}: ${i.message}` : i.message;
    })
    .join("; ");
}
