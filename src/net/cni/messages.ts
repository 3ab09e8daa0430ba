// The CNI runner's messages (`burrow __cni-runner`, src/net/cni/runner.ts <->
// the daemon, src/net/cni/rootless-netns.ts): the single source of truth for
// their shapes, checked where received with parseMessage(). Apart from
// src/messages.ts so that a CLI start builds none of these schemas (issue 17).
import * as v from "valibot";

/** `burrow __cni-runner CONFIG`: CONFIG is this, as JSON. */
export const CniRunnerConfig = v.object({
  /** The rootless CNI netns pin. */
  netns: v.string(),
  /** Per-user directory that becomes /run. */
  runDir: v.string(),
  /** Per-user directory that becomes /var/lib/cni. */
  varDir: v.string(),
  /** Directories kept visible at their own paths (burrow's runtime dir with the pins, the CNI data dir). */
  keep: v.array(v.string()),
  /** The resolv.conf plugins (dnsmasq) should see. */
  resolvConf: v.string(),
  /**
   * Directories whose mounts are dropped in the runner's mount namespace
   * (the sandboxes' pins: it reaches them through /proc/<daemon>/root, and
   * its copies would keep removed sandboxes' namespaces alive).
   */
  detach: v.optional(v.array(v.pipe(v.string(), v.startsWith("/"))), []),
});
export type CniRunnerConfig = v.InferOutput<typeof CniRunnerConfig>;

/** One plugin process to run. */
export const SpawnRequest = v.object({
  argv: v.pipe(v.array(v.string()), v.minLength(1)),
  env: v.record(v.string(), v.string()),
  stdin: v.string(),
  timeoutMs: v.number(),
});
export type SpawnRequest = v.InferOutput<typeof SpawnRequest>;

export const SpawnResult = v.object({
  /** null when killed by a signal (or the timeout). */
  exitCode: v.nullable(v.number()),
  stdout: v.string(),
  stderr: v.string(),
  timedOut: v.optional(v.boolean()),
});
export type SpawnResult = v.InferOutput<typeof SpawnResult>;

/** Daemon -> runner, one JSON line on its stdin. */
export const CniRunnerRequest = v.object({ id: v.number(), ...SpawnRequest.entries });

/** Runner -> daemon, one JSON line on its stdout: "ready" once, then one reply per request. */
export const CniRunnerReply = v.union([v.object({ ready: v.literal(true) }), v.object({ id: v.number(), ...SpawnResult.entries })]);
