// Running the real netavark binary through its documented interface
// (docs/netavark.md "Protocol"):
//
//   netavark --config DIR --rootless=BOOL --aardvark-binary PATH setup|teardown NETNS
//
// with the network options JSON on stdin; setup answers one status block
// per network on stdout, and any failure is `{"error": "..."}` on stdout
// with a non-zero exit status. Both replies are validated before use.
//
// netavark enters NETNS itself and configures the namespace it is started
// in as "the host" (bridge, firewall, port forwarding): rootful that is the
// host's, rootless it must be burrow's rootless network namespace and mount
// namespace (as podman does). So where it runs is the spawner's business:
// the caller passes one that enters the right namespaces.
import * as v from "valibot";
import { BurrowError } from "../../errors.ts";
import { findHelper, helperConf, withSbin } from "../../machine/helpers.ts";
import type { HelperConf } from "../../machine/containers-conf.ts";
import { formatIssues } from "../../messages.ts";
import { ErrorReply, type NetworkFile, type PerNetworkOptions, type PortMapping, type SetupOptions, SetupReply, VersionReply } from "./schema.ts";

/** podman's default helper_binaries_dir, where distributions put netavark and aardvark-dns. */
export const PODMAN_HELPER_DIRS = ["/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman"];

/**
 * Absolute path of netavark or aardvark-dns: containers.conf
 * helper_binaries_dir (podman's default list when unset), then PATH.
 */
export function findNetavarkHelper(name: "netavark" | "aardvark-dns", conf: HelperConf = helperConf(), path = process.env.PATH): string | null {
  return findHelper(name, { ...conf, helperBinariesDir: conf.helperBinariesDir ?? PODMAN_HELPER_DIRS }, path);
}

/** One network a sandbox joins. burrow allocates the address: netavark's host-local IPAM takes it from static_ips. */
export interface NetworkAttachment {
  network: NetworkFile;
  /** In the sandbox: eth0, eth1, ... */
  interfaceName: string;
  staticIps: string[];
  staticMac?: string;
  /** Names aardvark-dns answers for this sandbox on this network, besides its name. */
  aliases?: string[];
}

export interface PublishedPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp" | "sctp";
  /** How many consecutive ports (default 1). */
  range?: number;
}

/** Everything netavark needs to know about one sandbox. */
export interface SandboxNetworks {
  containerId: string;
  containerName: string;
  hostname?: string;
  attachments: NetworkAttachment[];
  ports?: PublishedPort[];
  /** --dns: given to aardvark-dns as this sandbox's upstream servers. */
  dnsServers?: string[];
}

/**
 * The options JSON for setup and teardown (the same document for both, as
 * podman sends). netavark requires the network's three booleans, which a
 * hand-written file may lack: they default to false, as Go reads them.
 */
export function buildSetupOptions(input: SandboxNetworks): SetupOptions {
  if (!input.attachments.length) throw new BurrowError("a netavark setup needs at least one network", { kind: "internal" });
  const networks: Record<string, PerNetworkOptions> = {};
  const networkInfo: Record<string, NetworkFile> = {};
  for (const a of input.attachments) {
    const name = a.network.name;
    if (networks[name]) throw new BurrowError(`network ${name} is given twice`, { kind: "bad-input" });
    networks[name] = {
      interface_name: a.interfaceName,
      ...(a.staticIps.length ? { static_ips: a.staticIps } : {}),
      ...(a.staticMac ? { static_mac: a.staticMac } : {}),
      ...(a.aliases?.length ? { aliases: a.aliases } : {}),
    };
    networkInfo[name] = {
      ...a.network,
      ipv6_enabled: a.network.ipv6_enabled ?? false,
      internal: a.network.internal ?? false,
      dns_enabled: a.network.dns_enabled ?? false,
    };
  }
  const portMappings: PortMapping[] = (input.ports ?? []).map((p) => ({
    host_ip: p.hostIp,
    host_port: p.hostPort,
    container_port: p.containerPort,
    protocol: p.protocol,
    range: p.range ?? 1,
  }));
  return {
    container_id: input.containerId,
    container_name: input.containerName,
    ...(input.hostname ? { container_hostname: input.hostname } : {}),
    networks,
    network_info: networkInfo,
    ...(portMappings.length ? { port_mappings: portMappings } : {}),
    ...(input.dnsServers?.length ? { dns_servers: input.dnsServers } : {}),
  };
}

/** How to run netavark: the same for setup and teardown of one sandbox. */
export interface NetavarkInvocation {
  binary: string;
  /**
   * netavark's own state: firewall driver and rules to undo (firewall/),
   * aardvark-dns's config and pid (aardvark-dns/). podman uses
   * /run/containers/networks rootful, $XDG_RUNTIME_DIR/containers/networks
   * rootless. Must be the same for setup and teardown.
   */
  configDir: string;
  rootless: boolean;
  /** Without it netavark looks for /usr/libexec/podman/aardvark-dns and skips DNS when that is missing. */
  aardvarkBinary?: string;
  /** NETAVARK_FW: "nftables", "iptables" (netavark 1.x), "firewalld", "none". Unset: netavark's build default. */
  firewallDriver?: string;
  /** NETAVARK_DNS_PORT: aardvark-dns's port (containers.conf dns_bind_port); 53 when unset. */
  dnsPort?: number;
  /** RUST_LOG for netavark's stderr (e.g. "debug"); unset keeps it quiet. */
  logLevel?: string;
}

export function netavarkArgv(inv: NetavarkInvocation, command: "setup" | "teardown", netnsPath: string): string[] {
  // `--rootless` takes a value (clap Option<bool>): a bare flag is a usage error.
  const argv = [inv.binary, "--config", inv.configDir, `--rootless=${inv.rootless}`];
  if (inv.aardvarkBinary) argv.push("--aardvark-binary", inv.aardvarkBinary);
  argv.push(command, netnsPath);
  return argv;
}

/** netavark's environment: nothing inherited but PATH (netavark 1.x runs iptables from it) and the knobs above. */
export function netavarkEnv(inv: NetavarkInvocation, path = process.env.PATH): Record<string, string> {
  const env: Record<string, string> = { PATH: withSbin(path) };
  if (inv.firewallDriver) env.NETAVARK_FW = inv.firewallDriver;
  if (inv.dnsPort !== undefined) env.NETAVARK_DNS_PORT = String(inv.dnsPort);
  if (inv.logLevel) env.RUST_LOG = inv.logLevel;
  return env;
}

export interface NetavarkRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv with `stdin` written to it; the caller's spawner may wrap it (nsenter, the rootless namespaces). */
export type NetavarkSpawner = (argv: string[], stdin: string, env: Record<string, string>) => Promise<NetavarkRun>;

export const bunNetavarkSpawner: NetavarkSpawner = async (argv, stdin, env) => {
  const p = Bun.spawn(argv, { env, stdin: new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
};

/** A setup that failed and whose teardown failed too: something of it may be left, so its caller keeps what a later teardown needs. */
export class NetavarkRollbackFailed extends BurrowError {
  constructor(message: string) {
    super(message, { kind: "netavark" });
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, "; ").trim();
}

/**
 * netavark's own message from a failed run, in one line: the `error` of its
 * JSON reply (the last line of stdout), else the last line of stderr (a
 * usage error from clap, a crash), else the exit status.
 */
export function failureMessage(run: NetavarkRun): string {
  const last = run.stdout.trim().split("\n").at(-1) ?? "";
  try {
    const r = v.safeParse(ErrorReply, JSON.parse(last));
    if (r.success && r.output.error.trim()) return oneLine(r.output.error);
  } catch {} // not JSON: fall through to stderr
  const err = run.stderr.trim().split("\n").filter(Boolean);
  const usage = err.find((l) => l.startsWith("error:"));
  if (usage) return oneLine(usage.replace(/^error:\s*/, ""));
  if (err.length) return oneLine(err.at(-1)!);
  return `exit status ${run.code}`;
}

function failed(command: string, run: NetavarkRun): BurrowError {
  return new BurrowError(`netavark ${command} failed: ${failureMessage(run)}`, { kind: "netavark" });
}

/**
 * `netavark setup NETNS`: creates the interfaces, addresses, routes, firewall
 * rules and port forwarding, and starts or updates aardvark-dns. Returns the
 * validated status per network.
 *
 * A failed setup is followed by a teardown with the same options, as podman
 * does: netavark 1.17 does not undo what it did before the failing step
 * (measured: a bad address leaves the veth pair and the bridge;
 * test/integration/netavark-lib.test.ts). The error is setup's message, plus
 * teardown's when that fails too. The caller undoes its own part.
 */
export async function netavarkSetup(
  inv: NetavarkInvocation,
  netnsPath: string,
  options: SetupOptions,
  spawn: NetavarkSpawner = bunNetavarkSpawner,
): Promise<SetupReply> {
  const stdin = JSON.stringify(options);
  const run = await spawn(netavarkArgv(inv, "setup", netnsPath), stdin, netavarkEnv(inv));
  if (run.code !== 0) {
    const err = failed("setup", run);
    const undo = await spawn(netavarkArgv(inv, "teardown", netnsPath), stdin, netavarkEnv(inv)).catch((e: Error) => ({
      code: -1,
      stdout: "",
      stderr: e.message,
    }));
    if (undo.code === 0) throw err;
    throw new NetavarkRollbackFailed(`${err.message} (and its rollback failed: ${failureMessage(undo)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(run.stdout);
  } catch (e) {
    throw new BurrowError(`netavark setup answered something that is not JSON: ${oneLine(run.stdout).slice(0, 200)}`, { kind: "netavark", cause: e });
  }
  const r = v.safeParse(SetupReply, json);
  if (!r.success) throw new BurrowError(`netavark setup's answer is malformed: ${formatIssues(r.issues)}`, { kind: "netavark" });
  for (const name of Object.keys(options.networks)) {
    if (!r.output[name]) throw new BurrowError(`netavark setup's answer has no status for network ${name}`, { kind: "netavark" });
  }
  return r.output;
}

/**
 * `netavark teardown NETNS`: the inverse of setup for the same options.
 * netavark itself goes on past the first error and reports them all in one
 * message. NETNS may already be gone (a sandbox that died): netavark then
 * still removes the firewall rules and DNS entries.
 */
export async function netavarkTeardown(
  inv: NetavarkInvocation,
  netnsPath: string,
  options: SetupOptions,
  spawn: NetavarkSpawner = bunNetavarkSpawner,
): Promise<void> {
  const run = await spawn(netavarkArgv(inv, "teardown", netnsPath), JSON.stringify(options), netavarkEnv(inv));
  if (run.code !== 0) throw failed("teardown", run);
}

/** `netavark version`, validated: the version and (1.17+) its default firewall driver. */
export async function netavarkVersion(binary: string, spawn: NetavarkSpawner = bunNetavarkSpawner): Promise<VersionReply> {
  const run = await spawn([binary, "version"], "", { PATH: withSbin(process.env.PATH) });
  if (run.code !== 0) throw failed("version", run);
  try {
    const r = v.safeParse(VersionReply, JSON.parse(run.stdout));
    if (r.success) return r.output;
    throw new BurrowError(`netavark version's answer is malformed: ${formatIssues(r.issues)}`, { kind: "netavark" });
  } catch (e) {
    if (e instanceof BurrowError) throw e;
    throw new BurrowError(`netavark version answered something that is not JSON: ${oneLine(run.stdout).slice(0, 200)}`, { kind: "netavark", cause: e });
  }
}
