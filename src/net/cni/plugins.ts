// Finding and running one CNI plugin executable (the spec's "execution
// protocol"): config on stdin, parameters in CNI_* variables, a result or an
// error object on stdout.
//
// Which namespaces a plugin runs in is the caller's choice: by default it
// inherits the daemon's (host) namespaces; `wrapper` (an argv prefix such as
// `nsenter --net=/run/netns/X --`) or a custom `spawn` puts it elsewhere, e.g.
// the rootless-netns with per-user /var/lib/cni and /run binds.
import { accessSync, constants, statSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { BurrowError, messageOf } from "../../errors.ts";
import { log } from "../../log.ts";
import { cleanEnv } from "../../sys/env.ts";
import { PluginErrorSchema } from "./result.ts";

/** Where plugins are looked for, in order (podman v3's default cni_plugin_dirs, plus Debian's /usr/lib/cni). */
import { DEFAULT_PLUGIN_DIRS } from "./dirs.ts";
import { withSbin } from "../../machine/helpers.ts";
import { bunSpawner, type PluginSpawner, type SpawnRequest, type SpawnResult } from "./spawn.ts";

export { bunSpawner, type PluginSpawner, type SpawnRequest, type SpawnResult };

export { DEFAULT_PLUGIN_DIRS };

export const DEFAULT_PLUGIN_TIMEOUT_MS = 60_000;

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION";

export interface PluginExecOptions {
  /** Directories searched for plugin executables, in order (CNI_PATH). */
  pluginDirs?: string[];
  /** Prepended to the plugin's argv, e.g. ["nsenter", "--net=/run/netns/x", "--"]. */
  wrapper?: string[];
  /** Replaces the default spawner (Bun.spawn); still receives the wrapped argv. */
  spawn?: PluginSpawner;
  /** Extra environment for plugins (undefined removes a variable). CNI_* variables are always set by burrow. */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** A plugin failed: its error object (code, msg, details) verbatim, or what it printed. */
export class CniPluginError extends BurrowError {
  readonly plugin: string;
  readonly command: CniCommand;
  readonly code: number | undefined;
  readonly msg: string;
  readonly details: string | undefined;
  constructor(o: { plugin: string; command: CniCommand; code?: number; msg: string; details?: string; exitCode?: number | null }) {
    const what = o.command === "ADD" ? "failed" : `failed on ${o.command}`;
    const status = o.code !== undefined ? `code ${o.code}` : o.exitCode === null ? "killed" : `exit status ${o.exitCode}`;
    const details = o.details ? `: ${o.details}` : "";
    super(`CNI plugin ${o.plugin} ${what} (${status}): ${o.msg}${details}`, { kind: "cni-plugin" });
    this.plugin = o.plugin;
    this.command = o.command;
    this.code = o.code;
    this.msg = o.msg;
    this.details = o.details;
  }
}

/** The plugin's executable: the first `<dir>/<type>` that is an executable file. */
export function findPlugin(type: string, dirs: string[] = DEFAULT_PLUGIN_DIRS): string {
  // libcni's FindInPath: a type is a file name, never a path.
  if (type === "" || type.includes("/") || type === "." || type === "..") {
    throw new BurrowError(`invalid CNI plugin type ${JSON.stringify(type)}: expected an executable's name such as bridge`, { kind: "cni-plugin-missing" });
  }
  for (const dir of dirs) {
    const path = join(dir, type);
    try {
      if (!statSync(path).isFile()) continue;
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  throw new BurrowError(`CNI plugin ${type} not found in ${dirs.join(", ")}: install it (Debian: containernetworking-plugins) or add its directory`, {
    kind: "cni-plugin-missing",
  });
}

export interface PluginCall {
  command: CniCommand;
  /** The plugin type (its executable's name). */
  type: string;
  /** The full stdin config (name, cniVersion, runtimeConfig, prevResult injected). */
  config: Record<string, unknown>;
  containerId?: string;
  netns?: string;
  ifName?: string;
  /** CNI_ARGS as key/value pairs. */
  args?: Array<[string, string]>;
}

/** CNI_ARGS: `K=V;K=V` (libcni's Args.AsEnv). */
export function cniArgsString(args: Array<[string, string]> = []): string {
  return args.map(([k, val]) => `${k}=${val}`).join(";");
}

/** The environment of one plugin run: ours minus stray CNI_* variables, the caller's extras, then the CNI parameters. */
export function pluginEnv(call: Omit<PluginCall, "config" | "type">, opts: PluginExecOptions): Record<string, string> {
  const base: Record<string, string | undefined> = {};
  for (const [k, val] of Object.entries(process.env)) if (!k.startsWith("CNI_")) base[k] = val;
  const env = cleanEnv(
    {
      ...opts.env,
      CNI_COMMAND: call.command,
      CNI_CONTAINERID: call.containerId ?? "",
      CNI_NETNS: call.netns ?? "",
      CNI_IFNAME: call.ifName ?? "",
      CNI_ARGS: cniArgsString(call.args),
      CNI_PATH: (opts.pluginDirs ?? DEFAULT_PLUGIN_DIRS).join(":"),
    },
    base,
  );
  // Plugins run iptables, ip6tables and dnsmasq from /usr/sbin or /sbin,
  // which a user's PATH often lacks (Debian); podman v3 adds them the same way.
  env.PATH = withSbin(env.PATH);
  return env;
}

/**
 * Runs one plugin command and returns its parsed stdout (undefined when it
 * printed nothing, as DEL and CHECK do). Throws CniPluginError with the
 * plugin's own error object when it fails.
 */
export async function execPlugin(call: PluginCall, opts: PluginExecOptions = {}): Promise<unknown> {
  const path = findPlugin(call.type, opts.pluginDirs ?? DEFAULT_PLUGIN_DIRS);
  const argv = [...(opts.wrapper ?? []), path];
  const stdin = JSON.stringify(call.config);
  const spawn = opts.spawn ?? bunSpawner;
  const started = performance.now();
  let out: SpawnResult;
  try {
    out = await spawn({ argv, env: pluginEnv(call, opts), stdin, timeoutMs: opts.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS });
  } catch (e) {
    throw new CniPluginError({ plugin: call.type, command: call.command, msg: `cannot run ${argv.join(" ")}: ${messageOf(e)}` });
  } finally {
    log.debug(`cni: ${call.command} ${call.type} (${call.containerId ?? ""} ${call.ifName ?? ""}) ${(performance.now() - started).toFixed(1)} ms`);
  }
  if (out.stderr.trim()) log.debug(`cni: ${call.type} stderr: ${out.stderr.trim()}`);
  if (out.timedOut) {
    throw new CniPluginError({
      plugin: call.type,
      command: call.command,
      exitCode: null,
      msg: `no answer within ${opts.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS} ms`,
    });
  }
  const text = out.stdout.trim();
  if (out.exitCode !== 0) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const err = v.safeParse(PluginErrorSchema, json);
    if (err.success) {
      throw new CniPluginError({ plugin: call.type, command: call.command, code: err.output.code, msg: err.output.msg ?? "", details: err.output.details });
    }
    // Not the spec's error object: say what the plugin did print (libcni's pluginErr).
    const said = (text || out.stderr.trim()).split("\n").filter(Boolean).join(" | ");
    throw new CniPluginError({
      plugin: call.type,
      command: call.command,
      exitCode: out.exitCode,
      msg: said ? said : "the plugin printed no error message",
    });
  }
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CniPluginError({ plugin: call.type, command: call.command, exitCode: 0, msg: `its output is not JSON (${messageOf(e)}): ${text.slice(0, 200)}` });
  }
}
