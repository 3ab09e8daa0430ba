// Probing and starting pasta (passt) for a sandbox's network namespace,
// like podman's networking_pasta.go: pasta configures the namespace's
// interface as a copy of the host's, forks into the background once ready
// and exits by itself when the namespace file is deleted.
//
// Runs in the daemon's namespaces (rootless: the holder's user and mount
// namespaces); pasta joins the sandbox netns by path.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";
import { BurrowError, messageOf } from "../../errors.ts";
import { cleanEnv } from "../../sys/env.ts";
import { findHelper } from "../../machine/helpers.ts";
import { stopHelper } from "../../sys/processes.ts";
import type { HelperTrack } from "../../state/helpers.ts";
import type { PastaOptions } from "./options.ts";

/** The address the sandbox's resolv.conf names; pasta forwards it to the host's resolvers (podman 5 uses the same). */
export const PASTA_DNS_FORWARD = "169.254.1.1";
/** The address pasta maps to the host (--map-guest-addr, pasta 2024-08 and later): podman 5.3's host.containers.internal. */
export const PASTA_GUEST_ADDR = "169.254.1.2";

const INSTALL_HINT = "install the Debian package passt (apt-get install passt)";

export const PastaFeaturesSchema = v.object({
  path: v.string(),
  /** Debian's 2023 builds print "pasta unknown version". */
  version: v.string(),
  configNet: v.boolean(),
  dnsForward: v.boolean(),
  noMapGw: v.boolean(),
  runas: v.boolean(),
  /** --map-guest-addr (passt 2024_08_21 and later; Debian 12's 2023 pasta lacks it). */
  mapGuestAddr: v.boolean(),
  /** -c/--conf-path: the control socket pesto(1) changes a running pasta's forwards through (passt 2025 and later, experimental). */
  confPath: v.boolean(),
});
export type PastaFeatures = v.InferOutput<typeof PastaFeaturesSchema>;

/** What probePasta remembers across daemons (a file in the state dir), by binary path. */
const DiskCacheSchema = v.object({ entries: v.record(v.string(), v.object({ key: v.string(), features: PastaFeaturesSchema })) });
type DiskCache = v.InferOutput<typeof DiskCacheSchema>;

function readDiskCache(file: string): DiskCache {
  try {
    const parsed = v.safeParse(DiskCacheSchema, JSON.parse(readFileSync(file, "utf8")));
    if (parsed.success) return parsed.output;
  } catch {}
  return { entries: {} };
}

function writeDiskCache(file: string, cache: DiskCache): void {
  // A cache: failing to write it only costs a probe next time.
  try {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(cache), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {}
}

/** Pure: features from `pasta --help` and `--version` output. */
export function parsePastaHelp(path: string, help: string, versionText: string): PastaFeatures {
  return {
    path,
    version: /^pasta (\S+)/m.exec(versionText)?.[1] ?? "unknown",
    configNet: help.includes("--config-net"),
    dnsForward: help.includes("--dns-forward"),
    noMapGw: help.includes("--no-map-gw"),
    runas: help.includes("--runas"),
    mapGuestAddr: help.includes("--map-guest-addr"),
    confPath: help.includes("--conf-path"),
  };
}

const memory = new Map<string, PastaFeatures>();

/** Where the daemon keeps probePasta's results across restarts: one file for every pasta it starts (sandboxes', the shared namespace's). */
export const pastaProbeCache = (paths: { stateDir: string }): string => `${paths.stateDir}/pasta-probe.json`;

/**
 * Probes pasta once per binary path + mtime + size, in memory and, with
 * `cachePath`, on disk across daemons (as slirp4netns's probe does): the
 * options burrow adds depend on it (--map-guest-addr, podman retries
 * without it instead). Throws BurrowError naming the package when missing.
 */
export async function probePasta(path?: string, cachePath?: string): Promise<PastaFeatures> {
  const bin = path ?? findHelper("pasta");
  let key: string;
  try {
    if (!bin) throw new Error("not in PATH");
    const st = statSync(bin);
    key = `${bin}:${st.mtimeMs}:${st.size}`;
  } catch {
    throw new BurrowError(`pasta is not installed (${path ?? "not found in PATH"}): ${INSTALL_HINT}`, { kind: "missing-dependency" });
  }
  const hit = memory.get(key);
  if (hit) return hit;
  if (cachePath) {
    const stored = readDiskCache(cachePath).entries[bin];
    if (stored && stored.key === key && stored.features.path === bin) {
      memory.set(key, stored.features);
      return stored.features;
    }
  }
  const run = async (arg: string) => {
    const p = Bun.spawn([bin, arg], { env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    // Without a syslog, pasta says "Failed to send N bytes to syslog" on stderr for every line.
    return (
      out +
      err
        .split("\n")
        .filter((l) => !l.startsWith("Failed to send"))
        .join("\n")
    );
  };
  let help: string;
  let version: string;
  try {
    [help, version] = await Promise.all([run("--help"), run("--version")]);
  } catch (e) {
    throw new BurrowError(`cannot run ${bin}: ${messageOf(e)}; ${INSTALL_HINT}`, { cause: e, kind: "missing-dependency" });
  }
  const features = parsePastaHelp(bin, help, version);
  if (!features.configNet) {
    throw new BurrowError(`pasta at ${bin} (version ${features.version}) lacks --config-net: install a newer passt`, {
      kind: "missing-dependency",
    });
  }
  memory.set(key, features);
  if (cachePath) {
    const cache = readDiskCache(cachePath);
    cache.entries[bin] = { key, features };
    writeDiskCache(cachePath, cache);
  }
  return features;
}

/** A port to publish through pasta: pasta binds the host side itself, so hostPort must be chosen (not 0). */
export interface PastaPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
}

/** `-t`/`-u` arguments for published ports, in pasta's `[ADDR/]HOST:CTR` syntax. Pure. */
export function pastaPortArgs(ports: readonly PastaPort[]): string[] {
  const args: string[] = [];
  for (const p of ports) {
    if (p.hostPort === 0) {
      throw new BurrowError(
        `pasta cannot pick a random host port for container port ${p.containerPort}/${p.protocol}: choose the host port before starting pasta`,
        { kind: "bad-input" },
      );
    }
    const addr = p.hostIp && p.hostIp !== "0.0.0.0" ? `${p.hostIp}/` : "";
    args.push(p.protocol === "tcp" ? "--tcp-ports" : "--udp-ports", `${addr}${p.hostPort}:${p.containerPort}`);
  }
  return args;
}

export interface PastaStartOptions {
  netnsPath: string;
  options: PastaOptions;
  features: PastaFeatures;
  ports?: readonly PastaPort[];
  /** pasta's own log (truncated by pasta on start). */
  logPath: string;
  /** Where pasta writes its daemon's pid. */
  pidPath: string;
  /** pasta's control socket for pesto (`burrow port add`), where this pasta has one (features.confPath). */
  controlPath?: string;
  /** How long pasta may take to configure and fork. Default 5000 ms. */
  readyTimeoutMs?: number;
  /** uid:gid pasta runs as; default: ours. See pastaArgs. */
  runas?: string;
  /** The helper ledger's row (written before the spawn; pasta's forked pid once known). */
  track?: HelperTrack;
  /**
   * Keep running when the namespace's pin file is deleted (`--no-netns-quit`):
   * for the shared rootless namespace of bridge networks, which burrow stops
   * itself and pins again after a logout removed the runtime directory.
   */
  outlivePin?: boolean;
}

/**
 * The pasta command line (without the binary), in podman 5's order
 * (common/libnetwork/pasta): --config-net; containers.conf pasta_options
 * and the user's options (both in `options.args`); one -t/-u per published
 * port; the DNS forwarder unless the user named one; "none" for the port
 * families nobody asked for (pasta's default is "auto": forward everything
 * bound); --no-map-gw unless --map-gw; burrow's own (--runas, log, pid);
 * --quiet, --netns; last --map-guest-addr where this pasta has it. Pure.
 */
export function pastaArgs(o: Omit<PastaStartOptions, "readyTimeoutMs">): string[] {
  const { options, features } = o;
  const ports = o.ports ?? [];
  const args = ["--config-net", ...options.args, ...pastaPortArgs(ports)];
  if (features.dnsForward && options.dnsForward.length === 0 && !options.ipv6Only) args.push("--dns-forward", PASTA_DNS_FORWARD);
  if (!options.tcpPorts && !ports.some((p) => p.protocol === "tcp")) args.push("--tcp-ports", "none");
  if (!options.udpPorts && !ports.some((p) => p.protocol === "udp")) args.push("--udp-ports", "none");
  if (!options.tcpNs) args.push("--tcp-ns", "none");
  if (!options.udpNs) args.push("--udp-ns", "none");
  if (!options.mapGw && features.noMapGw) args.push("--no-map-gw");
  // pasta started as uid 0 drops to "nobody", which cannot join a netns
  // owned by our user namespace ("Couldn't switch to pasta namespaces",
  // measured). The daemon is uid 0 rootful and in the holder's user
  // namespace rootless, so pasta keeps our ids; it still drops capabilities.
  if (features.runas) args.push("--runas", o.runas ?? `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`);
  args.push("--log-file", o.logPath);
  if (o.outlivePin) args.push("--no-netns-quit");
  // A user's --pid is in options.args already (pasta takes one): burrow reads that file.
  if (options.pidFile === null) args.push("--pid", o.pidPath);
  if (features.confPath && o.controlPath) args.push("--conf-path", o.controlPath);
  args.push("--quiet", "--netns", o.netnsPath);
  if (features.mapGuestAddr && options.mapGuestAddr === null && !options.ipv6Only) args.push("--map-guest-addr", PASTA_GUEST_ADDR);
  return args;
}

/** host.containers.internal's address that pasta gives the sandbox, or null when it maps none (podman 5.3). */
export function pastaHostAddress(options: PastaOptions, features: PastaFeatures): string | null {
  if (options.mapGuestAddr !== null) return options.mapGuestAddr === "none" ? null : options.mapGuestAddr;
  return features.mapGuestAddr && !options.ipv6Only ? PASTA_GUEST_ADDR : null;
}

/** The sandbox's nameserver with pasta: the forwarder, unless the user chose their own. */
export function pastaNameservers(options: PastaOptions, features: PastaFeatures): string[] {
  if (options.dnsForward.length > 0) return options.dnsForward;
  return features.dnsForward && !options.ipv6Only ? [PASTA_DNS_FORWARD] : [];
}

export interface PastaProcess {
  /** The backgrounded pasta (passt.avx2 on x86-64) serving the namespace. */
  pid: number;
  logPath: string;
  /** SIGTERM the pasta daemon (it also quits when the netns pin is removed). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts pasta for `netnsPath` and resolves once it has configured the
 * namespace and forked (its first process exits 0). On failure throws
 * BurrowError with what pasta printed.
 */
export async function startPasta(o: PastaStartOptions): Promise<PastaProcess> {
  // The user's pid file is theirs: pasta truncates it; burrow's own is removed first.
  const pidPath = o.options.pidFile ?? o.pidPath;
  if (o.options.pidFile === null) rmSync(o.pidPath, { force: true });
  const args = pastaArgs(o);
  const errPath = `${o.logPath}.start`;
  const errFd = openSync(errPath, "w", 0o600);
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn([o.features.path, ...args], { env: cleanEnv(o.track?.env), stdio: ["ignore", errFd, errFd] });
  } catch (e) {
    throw new BurrowError(`cannot start ${o.features.path}: ${messageOf(e)}; ${INSTALL_HINT}`, { cause: e, kind: "pasta" });
  } finally {
    closeSync(errFd);
  }
  const timeoutMs = o.readyTimeoutMs ?? 5000;
  const code = await Promise.race([proc.exited, Bun.sleep(timeoutMs).then(() => "timeout" as const)]);
  const printed = () => {
    try {
      const text = readFileSync(errPath, "utf8");
      const usage = text.search(/^Usage: /m); // after an option error: the error is above it
      return (usage >= 0 ? text.slice(0, usage) : text)
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("Failed to send"))
        .slice(-8)
        .join("; ");
    } catch {
      return "";
    }
  };
  let pid = 0;
  // On a timeout too: pasta may have forked and written its pid before the
  // foreground process was killed, and that pasta must be stopped as well
  // (the pid file was removed before the start: what it holds is this pasta's).
  if (code === 0 || code === "timeout") {
    try {
      const text = readFileSync(pidPath, "utf8").trim();
      // Helper output: a pid, and one of pasta's (a user's file could hold anything).
      if (/^[1-9]\d{0,9}$/.test(text) && isPasta(Number(text))) pid = Number(text);
    } catch {}
  }
  const stop = onceAsync(async () => {
    if (pid > 0) await stopHelper(pid, () => isPasta(pid));
  });
  if (code !== 0 || pid <= 0) {
    if (code === "timeout") proc.kill("SIGKILL");
    await stop();
    if (o.options.pidFile === null) rmSync(o.pidPath, { force: true });
    const what = code === "timeout" ? `was not ready after ${timeoutMs} ms` : code !== 0 ? `exited with code ${code}` : `wrote no pasta pid to ${pidPath}`;
    const said = printed();
    rmSync(errPath, { force: true });
    throw new BurrowError(`pasta for ${o.netnsPath} ${what}${said ? ` (pasta said: ${said})` : ""}`, { kind: "pasta" });
  }
  rmSync(errPath, { force: true });
  try {
    o.track?.spawned(pid);
  } catch (e) {
    // Nothing may run that nothing knows about.
    await stop();
    throw new BurrowError(`cannot record pasta (pid ${pid}) in the state database: ${messageOf(e)}`, { cause: e, kind: "internal" });
  }
  return { pid, logPath: o.logPath, stop };
}

/** Whether `pid` is a live pasta/passt process. */
export function isPasta(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return /^(pasta|passt)/.test(comm) && state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Whether `pid` is a live pasta serving `netnsPath` (its --netns argument). */
export function isOurPasta(pid: number, netnsPath: string): boolean {
  try {
    return isPasta(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(netnsPath);
  } catch {
    return false;
  }
}

function onceAsync(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
