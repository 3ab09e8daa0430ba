// Know the helper before using it (STYLE.md #3, podman checkSlirpFlags):
// run `slirp4netns --help` and `--version` once per binary, remember what it
// supports, and refuse an option the installed version lacks with a sentence
// that names the option and the version.
//
// Runs in any namespace: it only spawns the binary and reads files.
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";
import { BurrowError, messageOf } from "../../errors.ts";
import { cleanEnv } from "../../sys/env.ts";
import { findHelper } from "../../machine/helpers.ts";
import { DEFAULT_MTU, type Slirp4netnsOptions } from "./options.ts";

export const Slirp4netnsFeaturesSchema = v.object({
  /** Absolute path of the probed binary. */
  path: v.string(),
  /** "1.2.0", or "unknown" when --version printed nothing we understand. */
  version: v.string(),
  disableHostLoopback: v.boolean(),
  mtu: v.boolean(),
  enableSandbox: v.boolean(),
  enableSeccomp: v.boolean(),
  cidr: v.boolean(),
  ipv6: v.boolean(),
  outboundAddr: v.boolean(),
  netnsType: v.boolean(),
  apiSocket: v.boolean(),
});
export type Slirp4netnsFeatures = v.InferOutput<typeof Slirp4netnsFeaturesSchema>;

const INSTALL_HINT = "install the Debian package slirp4netns (apt-get install slirp4netns)";

/** Pure: features from the text of `--help` and `--version`. */
export function parseSlirp4netnsHelp(path: string, help: string, versionText: string): Slirp4netnsFeatures {
  const has = (flag: string) => help.includes(flag);
  return {
    path,
    version: /slirp4netns version (\S+)/.exec(versionText)?.[1] ?? "unknown",
    disableHostLoopback: has("--disable-host-loopback"),
    mtu: has("--mtu"),
    enableSandbox: has("--enable-sandbox"),
    enableSeccomp: has("--enable-seccomp"),
    cidr: has("--cidr"),
    ipv6: has("--enable-ipv6"),
    outboundAddr: has("--outbound-addr"),
    netnsType: has("--netns-type"),
    apiSocket: has("--api-socket"),
  };
}

/**
 * The slirp4netns binary to use: `path` when given, else the first
 * `slirp4netns` in PATH. Throws BurrowError naming the package to install.
 */
export function findSlirp4netns(path?: string): string {
  if (path) {
    try {
      if (statSync(path).isFile()) return path;
    } catch {}
    throw new BurrowError(`slirp4netns binary ${path} not found: ${INSTALL_HINT}, or point to an existing binary`, {
      kind: "missing-dependency",
    });
  }
  const found = findHelper("slirp4netns");
  if (!found) {
    throw new BurrowError(`slirp4netns is not installed (not found in containers.conf helper_binaries_dir, PATH, /usr/sbin or /sbin): ${INSTALL_HINT}`, {
      kind: "missing-dependency",
    });
  }
  return found;
}

const memory = new Map<string, Slirp4netnsFeatures>();

const DiskCacheSchema = v.object({
  entries: v.record(v.string(), v.object({ key: v.string(), features: Slirp4netnsFeaturesSchema })),
});

function cacheKey(path: string): string {
  const st = statSync(path);
  return `${path}:${st.mtimeMs}:${st.size}`;
}

function readDiskCache(file: string): v.InferOutput<typeof DiskCacheSchema> {
  try {
    const parsed = v.safeParse(DiskCacheSchema, JSON.parse(readFileSync(file, "utf8")));
    if (parsed.success) return parsed.output;
  } catch {}
  return { entries: {} };
}

function writeDiskCache(file: string, cache: v.InferOutput<typeof DiskCacheSchema>): void {
  // A cache: failing to write it only costs a probe next time.
  try {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(cache));
    renameSync(tmp, file);
  } catch {}
}

async function run(path: string, arg: string): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn([path, arg], { env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: out + err };
}

export interface ProbeOptions {
  /** The binary; default: `slirp4netns` from PATH. */
  path?: string;
  /** A JSON file that remembers probes across processes (e.g. in the state dir). */
  cachePath?: string;
}

/**
 * Probes the slirp4netns binary, once per path + mtime + size: results are
 * kept in memory and, with `cachePath`, on disk.
 */
export async function probeSlirp4netns(opts: ProbeOptions = {}): Promise<Slirp4netnsFeatures> {
  const path = findSlirp4netns(opts.path);
  const key = cacheKey(path);
  const cached = memory.get(key);
  if (cached) return cached;
  if (opts.cachePath) {
    const hit = readDiskCache(opts.cachePath).entries[path];
    if (hit && hit.key === key) {
      memory.set(key, hit.features);
      return hit.features;
    }
  }
  let help: { code: number; out: string };
  let version: { code: number; out: string };
  try {
    [help, version] = await Promise.all([run(path, "--help"), run(path, "--version")]);
  } catch (e) {
    throw new BurrowError(`cannot run ${path} --help: ${messageOf(e)}; ${INSTALL_HINT}`, { cause: e, kind: "missing-dependency" });
  }
  if (help.code !== 0) {
    const text = help.out.trim().split("\n").slice(-3).join(" | ");
    throw new BurrowError(`${path} --help failed with exit code ${help.code}: ${text}`, { kind: "missing-dependency" });
  }
  const features = parseSlirp4netnsHelp(path, help.out, version.code === 0 ? version.out : "");
  memory.set(key, features);
  if (opts.cachePath) {
    const disk = readDiskCache(opts.cachePath);
    disk.entries[path] = { key, features };
    writeDiskCache(opts.cachePath, disk);
  }
  return features;
}

/** Forgets in-memory probes (tests). */
export function clearSlirp4netnsProbeCache(): void {
  memory.clear();
}

/**
 * Refuses an option the installed slirp4netns lacks (podman's "... not
 * supported" checks, with the option and the version named). Pure.
 * `publishesPorts`: the sandbox publishes ports, so port_handler=slirp4netns
 * needs the API socket.
 */
export function checkSlirp4netnsFeatures(options: Slirp4netnsOptions, features: Slirp4netnsFeatures, opts: { publishesPorts?: boolean } = {}): void {
  const lacks = (option: string, flag: string) =>
    new BurrowError(`slirp4netns option ${option} needs ${flag}, which slirp4netns ${features.version} (${features.path}) lacks: install a newer slirp4netns`, {
      kind: "unsupported-option",
    });
  // burrow always names the namespace by path (slirp4netns >= 0.4).
  if (!features.netnsType) throw lacks("(any)", "--netns-type=path");
  if (options.cidr !== undefined && !features.cidr) throw lacks(`cidr=${options.cidr}`, "--cidr");
  if (options.enableIPv6 && !features.ipv6) throw lacks("enable_ipv6=true", "--enable-ipv6");
  if (options.outboundAddr !== undefined && !features.outboundAddr) throw lacks(`outbound_addr=${options.outboundAddr}`, "--outbound-addr");
  if (options.outboundAddr6 !== undefined && !(features.outboundAddr && features.ipv6)) {
    throw lacks(`outbound_addr6=${options.outboundAddr6}`, "--outbound-addr6");
  }
  // podman silently drops --mtu on versions without it; an MTU the user
  // asked for is refused instead of ignored.
  if (options.mtu !== DEFAULT_MTU && !features.mtu) throw lacks(`mtu=${options.mtu}`, "--mtu");
  if (opts.publishesPorts && options.portHandler === "slirp4netns" && !features.apiSocket) {
    throw lacks("port_handler=slirp4netns", "--api-socket");
  }
}
