// burrow's own CNI runtime (what libcni does for podman): run a network's
// plugin list for one attachment (container ID + netns + interface), chain
// results, keep them in libcni's cache format, and undo a failed ADD.
//
//   ADD    plugins in order; each gets the previous one's result as
//          prevResult; the last result is cached and returned.
//   DEL    plugins in reverse; the cached result is prevResult (0.4.0+);
//          every plugin runs even if one fails; the cache entry goes only
//          when all succeeded, so a retry (even after a daemon restart) can
//          still DEL.
//   CHECK  plugins in order against the cached result (0.4.0+).
//
// Runs in the daemon; plugins run where PluginExecOptions says (see plugins.ts).
import { mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as v from "valibot";
import { BurrowError, messageOf } from "../../errors.ts";
import { type Conflist, ConflistSchema, NETWORK_NAME_PATTERN, type PluginConf, describeIssues } from "./conflist.ts";
import { CniPluginError, DEFAULT_PLUGIN_DIRS, type PluginExecOptions, execPlugin, findPlugin } from "./plugins.ts";
import {
  type CniResult,
  type VersionResult,
  type WireResult,
  VersionResultSchema,
  WireResultSchema,
  normalizeResult,
  requireSupportedVersion,
  versionAtLeast,
  wireAsVersion,
} from "./result.ts";

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

export const CACHE_KIND = "cniCacheV1";

/** libcni's cachedInfo, as podman and libcni write it (config is base64, Go's []byte). */
export const CacheEntrySchema = v.looseObject({
  kind: v.literal(CACHE_KIND),
  containerId: v.string(),
  config: v.optional(v.string()),
  ifName: v.string(),
  networkName: v.string(),
  netns: v.optional(v.string()),
  cniArgs: v.optional(v.nullable(v.array(v.tuple([v.string(), v.string()])))),
  capabilityArgs: v.optional(v.nullable(v.record(v.string(), v.unknown()))),
  result: v.optional(v.nullable(v.record(v.string(), v.unknown()))),
});
export type CacheEntry = v.InferOutput<typeof CacheEntrySchema>;

/** A cache entry, decoded: what DEL needs after a restart. */
export interface CachedAttachment extends Attachment {
  networkName: string;
  /** The plugin list that was run (from the entry's config). */
  conflist: Conflist | undefined;
  /** The ADD result as cached (wire format). */
  result: WireResult | undefined;
  file: string;
}

/** DEL found more than one problem: every one is kept. */
export class CniTeardownError extends BurrowError {
  readonly errors: Error[];
  constructor(what: string, errors: Error[]) {
    super(`${what}: ${errors.map(messageOf).join("; ")}`, { cause: errors[0], kind: "cni-teardown" });
    this.errors = errors;
  }
}

/** libcni's cache file: <cacheDir>/results/<network>-<containerId>-<ifName>. */
export function cacheFilePath(cacheDir: string, networkName: string, containerId: string, ifName: string): string {
  return join(cacheDir, "results", `${networkName}-${containerId}-${ifName}`);
}

/** libcni's buildOneConfig + injectRuntimeConfig: a plugin's stdin. */
export function pluginStdin(list: Pick<Conflist, "name" | "cniVersion">, plugin: PluginConf, prevResult: WireResult | undefined, capabilityArgs: Record<string, unknown> = {}): Record<string, unknown> {
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
  async add(list: Conflist, att: Attachment): Promise<CniResult> {
    requireSupportedVersion(list.cniVersion, `network ${list.name}`);
    validateAttachment(att);
    for (const plugin of list.plugins) findPlugin(plugin.type, this.pluginDirs);

    let prev: WireResult | undefined;
    try {
      for (const plugin of list.plugins) {
        const out = await execPlugin(this.call("ADD", list, plugin, prev, att), this.exec);
        if (out === undefined) throw new BurrowError(`CNI plugin ${plugin.type} printed no result for ADD on network ${list.name}`, { kind: "cni-result" });
        const parsed = v.safeParse(WireResultSchema, out);
        if (!parsed.success) {
          throw new BurrowError(`CNI plugin ${plugin.type} printed an invalid result: ${describeIssues(parsed.issues)}`, { kind: "cni-result" });
        }
        prev = wireAsVersion(parsed.output, list.cniVersion, `the result of CNI plugin ${plugin.type}`);
      }
      await this.writeCache(list, att, prev!);
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
  async del(network: Conflist | string, att: Attachment): Promise<void> {
    const name = typeof network === "string" ? network : network.name;
    const cached = await this.readCacheEntry(name, att);
    let list: Conflist;
    if (typeof network === "string") {
      if (!cached?.conflist) {
        throw new BurrowError(`cannot tear down network ${name} for ${att.containerId}/${att.ifName}: no cached configuration in ${this.cachePath(name, att)}`, {
          kind: "cni-cache",
        });
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
    const errors = await this.runDel(list, { ...att, args, capabilityArgs }, prev);
    if (errors.length > 0) throw new CniTeardownError(`tearing down network ${list.name} for ${att.containerId}/${att.ifName}`, errors);
    await unlink(this.cachePath(list.name, att)).catch((e) => {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    });
  }

  /** CHECK (0.4.0+): asks every plugin whether the attachment is still as ADD left it. */
  async check(list: Conflist, att: Attachment): Promise<void> {
    requireSupportedVersion(list.cniVersion, `network ${list.name}`);
    if (!versionAtLeast(list.cniVersion, "0.4.0")) {
      throw new BurrowError(`network ${list.name} has cniVersion ${list.cniVersion}: CHECK needs 0.4.0 or later`, { kind: "cni-version" });
    }
    if (list.disableCheck) return;
    validateAttachment(att);
    const cached = await this.readCacheEntry(list.name, att);
    if (!cached?.result) {
      throw new BurrowError(`cannot check network ${list.name} for ${att.containerId}/${att.ifName}: no cached result in ${this.cachePath(list.name, att)}`, {
        kind: "cni-cache",
      });
    }
    const prev = wireAsVersion(cached.result, list.cniVersion, `cached result ${cached.file}`);
    for (const plugin of list.plugins) await execPlugin(this.call("CHECK", list, plugin, prev, att), this.exec);
  }

  /** VERSION: the spec versions a plugin speaks. */
  async version(type: string, cniVersion = "1.0.0"): Promise<VersionResult> {
    const out = await execPlugin({ command: "VERSION", type, config: { cniVersion } }, this.exec);
    const parsed = v.safeParse(VersionResultSchema, out);
    if (!parsed.success) {
      throw new BurrowError(`CNI plugin ${type} printed an invalid VERSION answer: ${describeIssues(parsed.issues)}`, { kind: "cni-result" });
    }
    return parsed.output;
  }

  /** libcni's ValidateNetworkList: every plugin exists and speaks the list's version. Returns the problems (empty: fine). */
  async validate(list: Conflist): Promise<string[]> {
    try {
      requireSupportedVersion(list.cniVersion, `network ${list.name}`);
    } catch (e) {
      return [messageOf(e)];
    }
    const problems: string[] = [];
    for (const plugin of list.plugins) {
      try {
        const info = await this.version(plugin.type, list.cniVersion);
        if (!info.supportedVersions.includes(list.cniVersion)) {
          problems.push(`CNI plugin ${plugin.type} does not support cniVersion ${list.cniVersion} (it supports ${info.supportedVersions.join(", ")})`);
        }
      } catch (e) {
        problems.push(messageOf(e));
      }
    }
    return problems;
  }

  /** The cache entry of one attachment, if any. */
  async cached(networkName: string, att: Pick<Attachment, "containerId" | "ifName">): Promise<CachedAttachment | undefined> {
    return this.readCacheEntry(networkName, att);
  }

  /** Every cached attachment (of one container, if given): what a restarted daemon must still DEL. */
  async cachedAttachments(containerId?: string): Promise<CachedAttachment[]> {
    const dir = join(this.cacheDir, "results");
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch {
      return [];
    }
    const out: CachedAttachment[] = [];
    for (const name of names) {
      if (containerId !== undefined && !name.includes(`-${containerId}-`)) continue;
      const entry = await readCacheFile(join(dir, name)).catch(() => undefined);
      if (entry && (containerId === undefined || entry.containerId === containerId)) out.push(entry);
    }
    return out;
  }

  private call(command: "ADD" | "DEL" | "CHECK", list: Conflist, plugin: PluginConf, prev: WireResult | undefined, att: Attachment) {
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

  /** DEL of every plugin, last first, collecting errors. */
  private async runDel(list: Conflist, att: Attachment, prev: WireResult | undefined): Promise<Error[]> {
    const errors: Error[] = [];
    for (const plugin of [...list.plugins].reverse()) {
      try {
        await execPlugin(this.call("DEL", list, plugin, prev, att), this.exec);
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return errors;
  }

  private async writeCache(list: Conflist, att: Attachment, result: WireResult): Promise<void> {
    const entry: CacheEntry = {
      kind: CACHE_KIND,
      containerId: att.containerId,
      config: Buffer.from(JSON.stringify(list)).toString("base64"),
      ifName: att.ifName,
      networkName: list.name,
      netns: att.netns,
    };
    if (att.args && att.args.length > 0) entry.cniArgs = att.args;
    if (att.capabilityArgs && Object.keys(att.capabilityArgs).length > 0) entry.capabilityArgs = att.capabilityArgs;
    entry.result = result as Record<string, unknown>;
    const file = this.cachePath(list.name, att);
    try {
      await mkdir(join(this.cacheDir, "results"), { recursive: true, mode: 0o700 });
      const tmp = `${file}.tmp${process.pid}`;
      await writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
      await rename(tmp, file);
    } catch (e) {
      throw new BurrowError(`cannot cache the CNI result of network ${list.name} in ${file}: ${messageOf(e)}`, { cause: e, kind: "cni-cache" });
    }
  }

  private async readCacheEntry(networkName: string, att: Pick<Attachment, "containerId" | "ifName">): Promise<CachedAttachment | undefined> {
    try {
      return await readCacheFile(this.cachePath(networkName, att));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
  }
}

/** Reads and decodes one libcni cache file; throws ENOENT errors as they are, BurrowError when malformed. */
export async function readCacheFile(file: string): Promise<CachedAttachment> {
  const text = await readFile(file, "utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new BurrowError(`CNI cache file ${file} is not JSON: ${messageOf(e)}`, { kind: "cni-cache" });
  }
  const parsed = v.safeParse(CacheEntrySchema, json);
  if (!parsed.success) throw new BurrowError(`CNI cache file ${file} is malformed: ${describeIssues(parsed.issues)}`, { kind: "cni-cache" });
  const e = parsed.output;
  let conflist: Conflist | undefined;
  if (e.config) {
    try {
      const list = v.safeParse(ConflistSchema, JSON.parse(Buffer.from(e.config, "base64").toString("utf8")));
      if (list.success) conflist = list.output;
    } catch {
      conflist = undefined;
    }
  }
  const result = e.result ? v.safeParse(WireResultSchema, e.result) : undefined;
  return {
    containerId: e.containerId,
    netns: e.netns ?? "",
    ifName: e.ifName,
    networkName: e.networkName,
    args: e.cniArgs ?? undefined,
    capabilityArgs: e.capabilityArgs ?? undefined,
    conflist,
    result: result?.success ? result.output : undefined,
    file,
  };
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
