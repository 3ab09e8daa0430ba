// burrow's own CNI runtime (what libcni does for podman): run a network's
// plugin list for one attachment (container ID + netns + interface), chain
// results, keep them in libcni's cache format, and undo a failed ADD.
//
//   ADD    plugins in order; each gets the previous one's result as
//          prevResult; the last result is cached and returned. portmap
//          without mappings is skipped: it would only echo prevResult.
//          After the first plugin, the ones that hand their prevResult on
//          (portmap, firewall, tuning, dnsname) run at once (addGroups).
//   DEL    plugins in reverse (ADD's groups at once); the cached result is prevResult (0.4.0+);
//          every plugin runs even if one fails (the caller may hold each
//          one back until a moment of its choosing); the cache entry goes only
//          when all succeeded, so a retry (even after a daemon restart) can
//          still DEL.
//
// The cache files (libcni's format) are in cache.ts.
//
// Runs in the daemon; plugins run where PluginExecOptions says (see plugins.ts).
import { unlink } from "node:fs/promises";
import * as v from "valibot";
import { BurrowError, messageOf } from "../../errors.ts";
import { type CachedAttachment, cacheFilePath, readCacheEntry, writeCacheEntry } from "./cache.ts";
import { type Conflist, NETWORK_NAME_PATTERN, type PluginConf, describeIssues } from "./conflist.ts";
import { CniPluginError, DEFAULT_PLUGIN_DIRS, type PluginExecOptions, execPlugin, findPlugin } from "./plugins.ts";
import { type CniResult, type WireResult, WireResultSchema, normalizeResult, requireSupportedVersion, versionAtLeast, wireAsVersion } from "./result.ts";

/** libcni's RuntimeConf: one interface of one container on one network. */
export interface Attachment {
  /** The sandbox's ID ([a-zA-Z0-9][a-zA-Z0-9_.-]*). */
  containerId: string;
  /** Path of the network namespace (a pin such as /run/netns/x or /proc/PID/ns/net). */
  netns: string;
  /** The interface name inside the sandbox (eth0, eth1, ...). */
  ifName: string;
  /** CNI_ARGS, in order. */
  args?: Array<[string, string]>;
  /** Capability arguments; each plugin gets in runtimeConfig only those its "capabilities" declare. */
  capabilityArgs?: Record<string, unknown>;
}

export interface CniRuntimeOptions extends PluginExecOptions {
  /** libcni's cache dir (podman: /var/lib/cni); results live in <cacheDir>/results. */
  cacheDir: string;
}

/** DEL found more than one problem: every one is kept. */
export { cacheFilePath, type CachedAttachment };

/** DEL found more than one problem: every one is kept. */
export class CniTeardownError extends BurrowError {
  readonly errors: Error[];
  constructor(what: string, errors: Error[]) {
    super(`${what}: ${errors.map(messageOf).join("; ")}`, { cause: errors[0], kind: "cni-teardown" });
    this.errors = errors;
  }
}

/** libcni's buildOneConfig + injectRuntimeConfig: a plugin's stdin. */
export function pluginStdin(
  list: Pick<Conflist, "name" | "cniVersion">,
  plugin: PluginConf,
  prevResult: WireResult | undefined,
  capabilityArgs: Record<string, unknown> = {},
): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  if (prevResult) conf.prevResult = prevResult;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [capability, enabled] of Object.entries(plugin.capabilities ?? {})) {
    if (enabled && capability in capabilityArgs) runtimeConfig[capability] = capabilityArgs[capability];
  }
  // Like libcni: only when there is something to pass, and it replaces any runtimeConfig in the file.
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  return conf;
}

/** libcni's ValidateContainerID / ValidateInterfaceName. */
export function validateAttachment(att: Attachment): void {
  if (!NETWORK_NAME_PATTERN.test(att.containerId)) {
    throw new BurrowError(`invalid CNI container ID ${JSON.stringify(att.containerId)}: use letters, digits, "_", "." and "-"`, { kind: "bad-input" });
  }
  const ifName = att.ifName;
  if (ifName === "" || ifName.length > 15 || ifName === "." || ifName === ".." || /[/:\s]/.test(ifName)) {
    throw new BurrowError(`invalid interface name ${JSON.stringify(ifName)}: at most 15 characters, without "/", ":" or spaces`, { kind: "bad-input" });
  }
  if (att.netns === "") throw new BurrowError("a CNI attachment needs a network namespace path", { kind: "bad-input" });
}

export class CniRuntime {
  readonly cacheDir: string;
  private readonly exec: PluginExecOptions;

  constructor(opts: CniRuntimeOptions) {
    const { cacheDir, ...exec } = opts;
    this.cacheDir = cacheDir;
    this.exec = exec;
  }

  private get pluginDirs(): string[] {
    return this.exec.pluginDirs ?? DEFAULT_PLUGIN_DIRS;
  }

  cachePath(networkName: string, att: Pick<Attachment, "containerId" | "ifName">): string {
    return cacheFilePath(this.cacheDir, networkName, att.containerId, att.ifName);
  }

  /**
   * ADD: attaches `att` to the network and returns the normalized result.
   * A missing plugin is reported before any plugin runs. When a plugin
   * fails, the whole list is DEL'd (every error collected) before the
   * plugin's error is thrown.
   */
  async add(list: Conflist, att: Attachment, env?: Record<string, string>): Promise<CniResult> {
    requireSupportedVersion(list.cniVersion, `network ${list.name}`);
    validateAttachment(att);
    for (const plugin of list.plugins) findPlugin(plugin.type, this.pluginDirs);
    // `env`: extra variables for this ADD's plugins (a helper ledger marker that dnsname hands on to dnsmasq).
    const exec = env ? { ...this.exec, env: { ...this.exec.env, ...env } } : this.exec;

    let prev: WireResult | undefined;
    const run = async (plugin: PluginConf, given: WireResult | undefined): Promise<WireResult | undefined> => {
      const call = this.call("ADD", list, plugin, given, att);
      if (passesThrough(call.config, given)) return given;
      const out = await execPlugin(call, exec);
      if (out === undefined) throw new BurrowError(`CNI plugin ${plugin.type} printed no result for ADD on network ${list.name}`, { kind: "cni-result" });
      const parsed = v.safeParse(WireResultSchema, out);
      if (!parsed.success) {
        throw new BurrowError(`CNI plugin ${plugin.type} printed an invalid result: ${describeIssues(parsed.issues)}`, { kind: "cni-result" });
      }
      return wireAsVersion(parsed.output, list.cniVersion, `the result of CNI plugin ${plugin.type}`);
    };
    try {
      for (const group of addGroups(list.plugins)) {
        if (group.length === 1) {
          prev = await run(group[0]!, prev);
          continue;
        }
        // Plugins that hand their prevResult on, run at once from the same one
        // (see addGroups); every one has ended before an error is thrown, so
        // the teardown below finds none still running.
        const given = prev;
        const settled = await Promise.allSettled(group.map((plugin) => run(plugin, given)));
        const failed = settled.find((r) => r.status === "rejected");
        if (failed) throw failed.reason;
        prev = handedOn(
          given,
          settled.map((r) => (r as PromiseFulfilledResult<WireResult | undefined>).value),
        );
      }
      await writeCacheEntry(this.cacheDir, list, att, prev!);
      return normalizeResult(prev, `network ${list.name}'s result`);
    } catch (e) {
      const teardown = await this.runDel(list, att, prev);
      throw withTeardown(e, teardown, `network ${list.name}`);
    }
  }

  /**
   * DEL: detaches `att`. `network` is the conflist, or just the network's
   * name to use the plugin list saved in the cache entry (the conflist may
   * be gone, or the daemon restarted). Runs every plugin even if some fail;
   * throws CniTeardownError listing all failures.
   */
  async del(network: Conflist | string, att: Attachment, opts: { beforeEachPlugin?: () => Promise<void> } = {}): Promise<void> {
    const name = typeof network === "string" ? network : network.name;
    const cached = await this.readCacheEntry(name, att);
    let list: Conflist;
    if (typeof network === "string") {
      if (!cached?.conflist) {
        throw new BurrowError(
          `cannot tear down network ${name} for ${att.containerId}/${att.ifName}: no cached configuration in ${this.cachePath(name, att)}`,
          {
            kind: "cni-cache",
          },
        );
      }
      list = cached.conflist;
    } else {
      list = network;
    }
    requireSupportedVersion(list.cniVersion, `network ${list.name}`);
    validateAttachment(att);
    // The spec passes prevResult on DEL from 0.4.0 on. An unreadable cached result is dropped, as libcni does.
    let prev: WireResult | undefined;
    if (cached?.result && versionAtLeast(list.cniVersion, "0.4.0")) {
      try {
        prev = wireAsVersion(cached.result, list.cniVersion, `cached result ${cached.file}`);
      } catch {
        prev = undefined;
      }
    }
    const args = att.args ?? cached?.args;
    const capabilityArgs = att.capabilityArgs ?? cached?.capabilityArgs;
    const errors = await this.runDel(list, { ...att, args, capabilityArgs }, prev, opts.beforeEachPlugin);
    if (errors.length > 0) throw new CniTeardownError(`tearing down network ${list.name} for ${att.containerId}/${att.ifName}`, errors);
    await unlink(this.cachePath(list.name, att)).catch((e) => {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    });
  }

  private call(command: "ADD" | "DEL", list: Conflist, plugin: PluginConf, prev: WireResult | undefined, att: Attachment) {
    return {
      command,
      type: plugin.type,
      config: pluginStdin(list, plugin, prev, att.capabilityArgs),
      containerId: att.containerId,
      netns: att.netns,
      ifName: att.ifName,
      args: att.args,
    };
  }

  /**
   * DEL of every plugin, last first, collecting errors; the groups ADD runs
   * at once (addGroups) are deleted at once too, before the plugin that made
   * the interface. `beforeEachPlugin` may hold each run (each group) back.
   */
  private async runDel(list: Conflist, att: Attachment, prev: WireResult | undefined, beforeEachPlugin?: () => Promise<void>): Promise<Error[]> {
    const errors: Error[] = [];
    for (const group of addGroups(list.plugins).reverse()) {
      try {
        await beforeEachPlugin?.();
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
        continue;
      }
      const settled = await Promise.allSettled([...group].reverse().map((plugin) => execPlugin(this.call("DEL", list, plugin, prev, att), this.exec)));
      for (const r of settled) if (r.status === "rejected") errors.push(r.reason instanceof Error ? r.reason : new Error(String(r.reason)));
    }
    return errors;
  }

  private readCacheEntry(networkName: string, att: Pick<Attachment, "containerId" | "ifName">): Promise<CachedAttachment | undefined> {
    return readCacheEntry(this.cachePath(networkName, att));
  }
}

/**
 * Plugins that print back the prevResult they were given, changed at most
 * in the interface they configure (tuning: its MAC), and read nothing of a
 * result but the addresses and interfaces the first plugin made:
 * containernetworking-plugins' portmap, firewall and tuning, and dnsname.
 */
const HANDS_ON = new Set(["portmap", "firewall", "tuning", "dnsname"]);

/**
 * ADD's plugins in the order they run: each alone, except that after the
 * first (the one that makes the interface: bridge), a run of HANDS_ON
 * plugins forms one group run at once. Each of those gets the first's
 * result; run one after another, each would have got the one before's,
 * which is the same result but for what tuning changed, and none of them
 * reads that. Measured rootful on CNI (docs/benchmarks.md): portmap,
 * firewall, tuning and dnsname take ~45 ms in a row, mostly their own
 * start and iptables' (which takes its lock per call).
 */
export function addGroups(plugins: readonly PluginConf[]): PluginConf[][] {
  const groups: PluginConf[][] = [];
  for (const plugin of plugins) {
    const last = groups.at(-1);
    // Never into the first plugin's group: it makes what the others read.
    if (groups.length > 1 && last && HANDS_ON.has(plugin.type) && HANDS_ON.has(last[0]!.type)) last.push(plugin);
    else groups.push([plugin]);
  }
  return groups;
}

/** A canonical JSON text: keys sorted, so that two serializers' equal values compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

/**
 * The result a group hands on: the one its members changed (the last in
 * list order whose result differs from what it was given, as a chain would
 * end with it), else the one they were given.
 */
export function handedOn(given: WireResult | undefined, results: readonly (WireResult | undefined)[]): WireResult | undefined {
  const before = canonical(given);
  return results.findLast((r) => canonical(r) !== before) ?? given;
}

/**
 * An ADD that would only print its prevResult back: portmap without port
 * mappings (every containernetworking-plugins release returns prevResult
 * first thing then). Not running it saves a process on every start of a
 * sandbox without ports, and on every rootless one (rootless bridges publish
 * through burrow's own forwarder). Its DEL still runs: that is off the
 * critical path and does what libcni's would.
 */
function passesThrough(config: Record<string, unknown>, prev: WireResult | undefined): boolean {
  if (config.type !== "portmap" || prev === undefined) return false;
  const mappings = (config.runtimeConfig as { portMappings?: unknown } | undefined)?.portMappings;
  return !Array.isArray(mappings) || mappings.length === 0;
}

function samePluginError(a: CniPluginError, b: CniPluginError): boolean {
  return a.plugin === b.plugin && a.code === b.code && a.msg === b.msg && a.details === b.details;
}

/** The error of a failed ADD, with the errors of its teardown added (same error object and class). */
function withTeardown(e: unknown, teardown: Error[], what: string): Error {
  const err = e instanceof BurrowError ? e : new BurrowError(`attaching ${what}: ${messageOf(e)}`, { cause: e });
  // A plugin whose config it cannot accept says so again on DEL: that repeats the error, it adds nothing.
  if (err instanceof CniPluginError) teardown = teardown.filter((t) => !(t instanceof CniPluginError && samePluginError(t, err)));
  if (teardown.length > 0) {
    err.message = `${err.message} (teardown also failed: ${teardown.map(messageOf).join("; ")})`;
    Object.assign(err, { teardownErrors: teardown });
  }
  return err;
}
