// The namespace Worker's messages (src/namespaces/create-worker.ts <-> the
// daemon's main thread, src/namespaces/pins.ts): the single source of truth
// for their shapes, checked where received with parseMessage(). Apart from
// src/messages.ts so that the CLI, which never talks to this Worker, builds
// none of these schemas at its start (issue 17).
import * as v from "valibot";

/** Daemon main thread -> namespace Worker (src/namespaces/create-worker.ts). */
export const CreateNsRequest = v.object({
  hostname: v.string(),
  newNet: v.boolean(),
  joinNet: v.optional(v.string()),
  /**
   * joinNet opened by the main thread (threads share the fd table): a
   * prepared spare's mount namespace is a private copy made earlier, where
   * a pin made since (or detached) is not mounted, so it joins by this fd.
   */
  joinNetFd: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  /** [source, target] bind mounts inside the new mount namespace. */
  binds: v.array(v.tuple([v.string(), v.string()])),
  /**
   * Directories covered by an empty read-only tmpfs inside the new mount
   * namespace: burrow's runtime dir (the control socket, every sandbox's
   * pins) and state dir are none of a sandboxed command's business. Every
   * mount below them (the copies of other sandboxes' pins) is unmounted in
   * the new namespace first, so that none keeps its namespace alive.
   */
  hide: v.optional(v.array(v.pipe(v.string(), v.startsWith("/"))), []),
  /** Run the unshare on this CPU (see src/namespaces/pins.ts). */
  cpu: v.optional(v.number()),
  /** Only a new network namespace (the rootless CNI namespace): no mnt/uts, no binds. */
  netOnly: v.optional(v.boolean()),
  /** The worker is a prepared spare: its namespaces exist; only name them and bind the files. */
  usePrepared: v.optional(v.boolean()),
  /** A new netns's sysctls, written before the network backend sets it up (NetnsPlan.netSysctls): paths under /proc/sys/net. */
  netSysctls: v.optional(v.array(v.tuple([v.pipe(v.string(), v.regex(/^net(\/[a-z0-9_]+)+$/)), v.pipe(v.string(), v.regex(/^[0-9 ]+$/))]))),
});
export type CreateNsRequest = v.InferOutput<typeof CreateNsRequest>;

/** Everything the namespace Worker is sent: a request, "prepare as a spare", or "done, exit". */
export const CreateNsMessage = v.union([
  v.object({ done: v.literal(true) }),
  /**
   * reset: the worker made a sandbox's namespaces before; it goes back to the daemon's first.
   * detach: every mount below these is unmounted in the new mount namespace (CreateNsRequest.hide).
   * ahead: the next plain sandbox's hostname and /etc binds, made now; the
   * detached directories are then hidden too, after the binds.
   */
  v.object({
    prepare: v.literal(true),
    cpu: v.optional(v.number()),
    reset: v.optional(v.literal(true)),
    detach: v.optional(v.array(v.pipe(v.string(), v.startsWith("/"))), []),
    ahead: v.optional(v.object({ hostname: v.string(), binds: v.array(v.tuple([v.string(), v.string()])) })),
  }),
  CreateNsRequest,
]);

/** Namespace Worker -> main thread: the thread whose namespaces to pin, or why not. */
export const CreateNsReply = v.variant("ok", [
  v.object({
    ok: v.literal(true),
    tid: v.number(),
    /**
     * A prepare with `ahead`: each detached directory's [st_dev, st_ino] as
     * it was hidden. A logout removes the runtime dir and a new one is made
     * at its path, which that hide does not cover: the create compares.
     */
    hidden: v.optional(v.array(v.tuple([v.number(), v.number()]))),
  }),
  v.object({ ok: v.literal(false), error: v.string() }),
]);
export type CreateNsReply = v.InferOutput<typeof CreateNsReply>;
