// burrow's own CNI runtime (what libcni does for podman): run a network's
// plugin list for one attachment (container ID + netns + interface), chain
// results, keep them in libcni's cache format, and undo a failed ADD.
//
//   ADD    plugins in order; each gets the previous one's result as
//          prevResult; the last result is cached and returned. portmap
//          without mappings is skipped: it would only echo prevResult.
//   DEL    plugins in reverse; the cached result is prevResult (0.4.0+);
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
    try {
      for (const plugin of list.plugins) {
        const call = this.call("ADD", list, plugin, prev, att);
        if (passesThrough(call.config, prev)) continue;
        const out = await execPlugin(call, exec);
        if (out === undefined) throw new BurrowError(`CNI plugin ${plugin.type} printed no result for ADD on network ${list.name}`, { kind: "cni-result" });
        const parsed = v.safeParse(WireResultSchema, out);
        if (!parsed.success) {
          throw new BurrowError(`CNI plugin ${plugin.type} printed an invalid result: ${describeIssues(parsed.issues)}`, { kind: "cni-result" });
        }
        prev = wireAsVersion(parsed.output, list.cniVersion, `the result of CNI plugin ${plugin.type}`);
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

  /** DEL of every plugin, last first, collecting errors. `beforeEachPlugin` may hold each run back. */
  private async runDel(list: Conflist, att: Attachment, prev: WireResult | undefined, beforeEachPlugin?: () => Promise<void>): Promise<Error[]> {
    const errors: Error[] = [];
    for (const plugin of [...list.plugins].reverse()) {
      try {
        await beforeEachPlugin?.();
        await execPlugin(this.call("DEL", list, plugin, prev, att), this.exec);
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return errors;
  }

  private readCacheEntry(networkName: string, att: Pick<Attachment, "containerId" | "ifName">): Promise<CachedAttachment | undefined> {
    return readCacheEntry(this.cachePath(networkName, att));
  }
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
