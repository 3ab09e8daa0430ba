// The rootless CNI network namespace: one per user, shared by every rootless
// bridge sandbox (podman v3's rootless-cni-ns, podman 5's rootless-netns). The
// CNI plugins and netavark run inside it (bridge, veths, iptables masquerade
// live there, never in the host's namespaces) and one helper gives it
// outbound connectivity: slirp4netns, or pasta as podman 5 runs it there when
// containers.conf default_rootless_network_cmd says so (the same rule as a
// plain `run`: src/machine/rootless-default.ts). Created on first need, torn
// down with its helper and dnsmasq when the last bridge sandbox leaves.
// Daemon main thread, session namespaces.
import {
  closeSync,
  copyFileSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import * as v from "valibot";
import { log } from "../../log.ts";
import { nsId } from "../../sys/ns.ts";
import { Mutex } from "../../mutex.ts";
import { type Paths, pinsRoot } from "../../paths.ts";
import { createPinnedNetns, pinHolds } from "../../namespaces/pins.ts";
import { pidsInNs, signalAll, stopHelper, withNamespace } from "../../sys/processes.ts";
import { bind, umountIfMounted } from "../../sys/mount.ts";
import { ROLES, spawnRole } from "../../roles.ts";
import { buildResolvConf, readHostResolvConf } from "../../dns/resolvconf.ts";
import { parseSlirp4netnsOptions, slirp4netnsAddresses } from "../slirp4netns/options.ts";
import { probeSlirp4netns } from "../slirp4netns/probe.ts";
import { isOurSlirp4netns, startSlirp4netns, stopSlirp4netnsPid } from "../slirp4netns/process.ts";
import { parseMessage } from "../../messages.ts";
import { CniRunnerReply, type CniRunnerConfig } from "./messages.ts";
import type { PluginSpawner, SpawnRequest, SpawnResult } from "./spawn.ts";
import type { HelperKind, HelperRow, HelperTrack } from "../../state/helpers.ts";
import { dnsmasqOf, dnsmasqOwner, dnsnameDir, dnsnameNetworks, dnsnameRoot, dnsnameRuntimeDir, stopDnsmasq } from "./dnsmasq.ts";
import { findHelper, helperConf } from "../../machine/helpers.ts";
import type { RootlessNetworkCmd } from "../../machine/containers-conf.ts";
import { sharedNamespaceHelper, type SharedNamespaceHelper } from "../../machine/rootless-default.ts";
import { parsePastaOptionsWithConf } from "../pasta/options.ts";
import { isOurPasta, pastaHostAddress, pastaNameservers, pastaProbeCache, probePasta, startPasta } from "../pasta/process.ts";
import type { PastaOptions } from "../pasta/options.ts";
import type { DnsView } from "../../dns/etc-content.ts";
import { networkInterfaces } from "node:os";
import { cleanEnv } from "../../sys/env.ts";
import { messageOf } from "../../errors.ts";
import { startTimeOf } from "../../sys/processes.ts";
import { readPrivateRecord, writePrivateRecord } from "../../private-file.ts";

/** In STATE_DIR/cni: what this boot's rootless CNI namespace is (see remember()). */
const MADE_FILE = "rootless-netns.json";

/** What the daemon lends the namespace: the helper ledger (issue 10 item 2). */
export interface RootlessNetnsHooks {
  /** Records a helper before it is spawned, owned by the namespace. */
  helpers?: { intend(kind: HelperKind, owner?: string): HelperTrack };
  /** Its slirp4netns exited while the namespace is in use (src/net/cni/rootless-supervisor.ts restarts it; a dead pasta is found by its housekeeping). */
  onSlirpExit?(pid: number): void;
}

/**
 * The daemon's end of one __cni-runner: requests as JSON lines on its
 * stdin, replies by id on its stdout. A runner that died fails what was
 * pending and is replaced on the next request.
 */
export class CniRunner {
  dead = false;
  private proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: SpawnResult) => void; reject: (e: Error) => void }>();
  private ready: Promise<void>;

  constructor(cfg: CniRunnerConfig) {
    this.proc = spawnRole(ROLES.cniRunner, [JSON.stringify(cfg)], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    this.proc.unref();
    let markReady!: () => void;
    let failReady!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    this.ready.catch(() => {});
    const proc = this.proc;
    let broken: string | undefined;
    void (async () => {
      const decoder = new TextDecoder();
      let buffered = "";
      for await (const chunk of proc.stdout) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          const msg = parseMessage(CniRunnerReply, line, "the CNI runner's reply");
          if ("ready" in msg) markReady();
          else {
            this.pending.get(msg.id)?.resolve(msg);
            this.pending.delete(msg.id);
          }
        }
      }
    })()
      .catch((e) => {
        // A reply that does not parse: stop trusting this runner.
        broken = (e as Error).message;
        proc.kill("SIGKILL");
      })
      .finally(async () => {
        this.dead = true;
        const why = broken ?? (await new Response(proc.stderr).text().catch(() => "")).trim();
        const err = new Error(`the rootless CNI plugin runner exited${why ? `: ${why}` : ""}`);
        failReady(err);
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
  }

  /** The runner's pid (its mount namespace is the plugins'). */
  get pid(): number {
    return this.proc.pid;
  }

  async run(req: SpawnRequest): Promise<SpawnResult> {
    await this.ready;
    const id = this.nextId++;
    const reply = new Promise<SpawnResult>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.proc.stdin.write(`${JSON.stringify({ id, ...req })}\n`);
    this.proc.stdin.flush();
    return reply;
  }

  stop(): void {
    this.dead = true;
    this.proc.kill("SIGKILL");
  }
}

/** Where host-local keeps its allocations (see backend.ts): it must be the same path inside the plugins' mount namespace. */
export function cniDataDir(paths: Paths): string {
  return `${paths.stateDir}/cni/networks`;
}

/** The helpers that can connect the namespace (containers.conf default_rootless_network_cmd). */
const SharedHelperName = v.picklist(["slirp4netns", "pasta"] as const satisfies readonly RootlessNetworkCmd[]);

/**
 * RUNTIME_DIR/rootless-netns/state.json. `slirpPid` is the pid of the
 * namespace's helper, whichever it is (the name is older than pasta here;
 * kept so a daemon of either build reads the other's file); `helper`
 * absent means slirp4netns, as every older build made it.
 */
const StateFile = v.object({
  ino: v.number(),
  slirpPid: v.number(),
  helper: v.optional(SharedHelperName),
  /** pasta: the address it maps to the host (--map-guest-addr), host.containers.internal for bridge sandboxes (podman 5.3). */
  hostAddress: v.optional(v.pipe(v.string(), v.ip())),
  /** pasta: the host's addresses it copied into the namespace, which are not the host from there. */
  inside: v.optional(v.array(v.pipe(v.string(), v.ip()))),
});
type State = v.InferOutput<typeof StateFile>;

const helperOf = (st: Pick<State, "helper">): RootlessNetworkCmd => st.helper ?? "slirp4netns";

interface Made {
  state: State;
  resolv: string;
  /** Its CNI plugins use iptables-legacy (chooseFirewall). */
  firewall?: "legacy";
}

const MadeFile = v.object({
  state: StateFile,
  resolv: v.string(),
  firewall: v.optional(v.literal("legacy")),
  bootId: v.string(),
  userns: v.nullable(v.string()),
  slirpStart: v.nullable(v.string()),
});

/**
 * The IPv4 addresses pasta --config-net gives the namespace: the user's
 * -a, else those of the host's interface with the default route, which
 * pasta copies. Read from /proc/net/route, no spawn.
 */
function pastaCopiedAddresses(options: PastaOptions): string[] {
  if (options.addresses.length) return options.addresses;
  try {
    const routes = readFileSync("/proc/net/route", "utf8").split("\n").slice(1);
    const iface = routes.map((l) => l.trim().split(/\s+/)).find((f) => f[1] === "00000000" && f[7] === "00000000")?.[0];
    return (iface ? (networkInterfaces()[iface] ?? []) : []).filter((a) => a.family === "IPv4").map((a) => a.address);
  } catch {
    return [];
  }
}

function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "";
  }
}

// iptables-legacy for the CNI plugins in this namespace (docs/decisions.md
// "The rootless namespace's CNI plugins use iptables-legacy"): nf_tables
// commits every rule deletion only after an RCU grace period, holding the
// namespace's commit mutex (iptables-nft -D 17 ms here, -legacy 4 ms), so a
// DEL's deletions held up the next ADD's additions. The namespace is
// burrow's own: nobody else reads its rules.
const LEGACY_NAMES = ["iptables", "ip6tables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"];
const LEGACY_MARK = "legacy\n";

/** iptables-legacy's multi-call binary, or null where the distribution has none. */
function legacyIptablesBinary(): string | null {
  for (const dir of ["/usr/sbin", "/sbin", "/usr/local/sbin"]) {
    try {
      return realpathSync(`${dir}/iptables-legacy`);
    } catch {}
  }
  return null;
}

/** SIGKILL, then wait (up to 2 s) until the process is gone: its sockets closed. */
async function killAndWait(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGKILL");
  } catch {}
  for (let i = 0; i < 100 && startTimeOf(pid) !== null; i++) await Bun.sleep(20);
}

/** Whether a dnsname hosts file names anyone (a sandbox is on the network). */
function hasNames(addnhosts: string): boolean {
  try {
    return readFileSync(addnhosts, "utf8").trim() !== "";
  } catch {
    return false;
  }
}

export class RootlessNetns {
  readonly dir: string;
  readonly pin: string;
  /** Serializes create/teardown against each other (one daemon, many requests). */
  private readonly mutex = new Mutex();
  /** ensure/teardown/revive under way: their helpers are claimed even before state.json names them. */
  private working = 0;
  hooks: RootlessNetnsHooks = {};

  constructor(readonly paths: Paths) {
    this.dir = `${paths.runtimeDir}/rootless-netns`;
    this.pin = `${this.dir}/net`;
  }

  private get stateFile(): string {
    return `${this.dir}/state.json`;
  }

  private readState(): State | null {
    try {
      const parsed = v.safeParse(StateFile, JSON.parse(readFileSync(this.stateFile, "utf8")));
      return parsed.success ? parsed.output : null;
    } catch {
      return null;
    }
  }

  /** Whether the helper `st` names is alive and serves this namespace's pin. */
  private helperAlive(st: Pick<State, "slirpPid" | "helper">): boolean {
    return helperOf(st) === "pasta" ? isOurPasta(st.slirpPid, this.pin) : isOurSlirp4netns(st.slirpPid, this.pin);
  }

  /** Which helper a new namespace gets, and why; decided when it is made. */
  private chosen: SharedNamespaceHelper | null = null;

  /**
   * For `info`: the helper serving the namespace now (with its pid), or the
   * one a new namespace would get.
   */
  helperInfo(): { helper: RootlessNetworkCmd; pid: number | null; why: string } {
    const st = this.readState();
    let choice = this.chosen;
    if (!choice) {
      try {
        choice = sharedNamespaceHelper(helperConf(), (name) => findHelper(name));
      } catch (e) {
        choice = { helper: "slirp4netns", why: messageOf(e), fallback: null };
      }
    }
    if (st && pinHolds(this.pin, st.ino)) {
      const helper = helperOf(st);
      return { helper, pid: this.helperAlive(st) ? st.slirpPid : null, why: helper === choice.helper ? choice.why : "chosen when the namespace was made" };
    }
    return { helper: choice.helper, pid: null, why: choice.why };
  }

  /** The helper of the namespace as it is now (slirp4netns when there is none). */
  get helperName(): RootlessNetworkCmd {
    const st = this.readState();
    return st ? helperOf(st) : (this.chosen?.helper ?? "slirp4netns");
  }

  /** The pinned namespace's inode number (null when there is none): tells one namespace from the next. */
  get inode(): number | null {
    return this.readState()?.ino ?? null;
  }

  /** Alive: pinned, and its helper (slirp4netns or pasta) still running. */
  alive(): boolean {
    const st = this.readState();
    return !!st && pinHolds(this.pin, st.ino) && this.helperAlive(st);
  }

  exists(): boolean {
    return existsSync(this.dir);
  }

  /** The mutex, counting who waits for or holds it (see owns()). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    this.working++;
    return this.mutex.run(fn).finally(() => this.working--);
  }

  ensure(): Promise<void> {
    return this.serial(async () => {
      if (this.alive()) {
        this.hold(this.readState()!.ino);
        if (!this.legacyChecked) await this.replaceLegacyDnsmasq();
        return;
      }
      if (this.exists()) await this.teardownNow();
      // A new namespace: no dnsmasq of an older one may serve it (a daemon
      // restarted after a logout lost that namespace's state.json).
      this.forgetDnsmasq();
      const t0 = performance.now();
      this.makeDirs();
      try {
        const chosen = sharedNamespaceHelper(helperConf(), (name) => findHelper(name));
        // Said once per daemon, as for a plain `run` (src/daemon/create.ts).
        if (chosen.fallback && !this.chosen?.fallback) log.warn(chosen.fallback);
        this.chosen = chosen;
        const ino = await createPinnedNetns(this.pin);
        this.hold(ino);
        const started = await this.startHelper(ino, chosen.helper);
        const resolv = buildResolvConf({ hostContent: readHostResolvConf().content, firstNameservers: started.nameservers });
        writeFileSync(`${this.dir}/resolv.conf`, resolv.content, { mode: 0o644 });
        // Its plugin runner binds resolv.conf: after it is written.
        const firewall = await this.chooseFirewall();
        this.remember({ state: started.state, resolv: resolv.content, ...(firewall ? { firewall } : {}) });
        log.debug(`rootless CNI namespace up with ${chosen.helper} in ${(performance.now() - t0).toFixed(1)} ms`);
      } catch (e) {
        await this.teardownNow();
        throw e;
      }
    });
  }

  /**
   * Starts the namespace's helper and writes the state naming it; returns
   * that state and the nameservers that reach the host's resolvers through it.
   */
  private async startHelper(ino: number, helper: RootlessNetworkCmd): Promise<{ state: State; nameservers: string[] }> {
    if (helper === "pasta") return this.startPasta(ino);
    const slirp = await this.startSlirp(ino);
    return { state: slirp.state, nameservers: [slirp4netnsAddresses(parseSlirp4netnsOptions([])).dns] };
  }

  /**
   * pasta as podman 5 runs it for its rootless netns (pasta.Setup with no
   * ports: --config-net, containers.conf pasta_options, --dns-forward,
   * "none" for every port direction, --no-map-gw, --map-guest-addr where
   * the installed pasta has it); bridge sandboxes' published ports go
   * through burrow's forwarder, not pasta. Also --no-netns-quit: a logout
   * deletes the pin file, and the namespace must outlive that (restore()
   * pins it again); burrow stops this pasta itself.
   */
  private async startPasta(ino: number): Promise<{ state: State; nameservers: string[] }> {
    const options = parsePastaOptionsWithConf(helperConf().pastaOptions ?? [], []);
    const features = await probePasta(undefined, pastaProbeCache(this.paths));
    const track = this.hooks.helpers?.intend("pasta");
    const pasta = await startPasta({
      track,
      netnsPath: this.pin,
      options,
      features,
      logPath: `${this.dir}/pasta.log`,
      pidPath: `${this.dir}/pasta.pid`,
      outlivePin: true,
    });
    const hostAddress = pastaHostAddress(options, features);
    const state: State = { ino, slirpPid: pasta.pid, helper: "pasta", ...(hostAddress ? { hostAddress } : {}), inside: pastaCopiedAddresses(options) };
    this.recordHelper(state);
    return { state, nameservers: pastaNameservers(options, features) };
  }

  /**
   * What bridge sandboxes' /etc/hosts needs from the namespace (podman 5.3's
   * rule for bridge networks): with pasta, host.containers.internal is the
   * address pasta maps to the host; without one (Debian 12's pasta has no
   * --map-guest-addr), the host's first address that pasta did not copy into
   * the namespace, since from there those are the namespace's own.
   */
  hostView(): Pick<DnsView, "hostContainersInternal" | "hostAddressesInside"> {
    const st = this.readState();
    if (!st || helperOf(st) !== "pasta") return {};
    return st.hostAddress ? { hostContainersInternal: st.hostAddress } : { hostAddressesInside: st.inside ?? [] };
  }

  /** state.json, and the state-dir record when there is one, name the helper that runs now. */
  private recordHelper(state: State): void {
    // The state first: a failure below must still find the helper to stop.
    writeFileSync(this.stateFile, JSON.stringify(state satisfies State), { mode: 0o600 });
    // restore() after a logout writes the state of the helper that runs now.
    // (A daemon restarted since ensure() has only the file: it is kept true too.)
    const made = this.made ?? this.recall();
    if (made) this.remember({ ...made, state });
  }

  /** Starts slirp4netns for the pinned namespace and writes the state naming it. */
  private async startSlirp(ino: number): Promise<{ state: State }> {
    const features = await probeSlirp4netns({ cachePath: `${this.paths.stateDir}/slirp4netns-probe.json` });
    const track = this.hooks.helpers?.intend("slirp4netns");
    const slirp = await startSlirp4netns({
      netnsPath: this.pin,
      options: parseSlirp4netnsOptions([]),
      features,
      logPath: `${this.dir}/slirp4netns.log`,
      track,
    });
    slirp.proc.unref();
    const state: State = { ino, slirpPid: slirp.pid, helper: "slirp4netns" };
    this.recordHelper(state);
    slirp.proc.exited.then(() => {
      // Not when our own teardown (or a restart) stopped it.
      if (this.working === 0 && this.readState()?.slirpPid === slirp.pid) this.hooks.onSlirpExit?.(slirp.pid);
    });
    return { state };
  }

  private legacyChecked = false;

  /**
   * A namespace made by burrow 0.2.0 or older (taken over on upgrade) has
   * dnsmasq processes whose dnsname files are in the runner's /run, under
   * RUNTIME_DIR/rootless-netns/run: the next ADD, looking in the state dir,
   * would start a second dnsmasq that cannot bind the bridge's port 53.
   * Each is stopped and its hosts file copied to the state dir, so the
   * dnsmasq the next ADD starts has every name. Once per daemon, and after
   * a logout.
   */
  private async replaceLegacyDnsmasq(): Promise<void> {
    this.legacyChecked = true;
    const st = this.readState();
    if (!st) return;
    const root = dnsnameRoot(this.paths);
    for (const pid of pidsInNs("net", st.ino)) {
      let argv: string[];
      try {
        if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "dnsmasq") continue;
        argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      } catch {
        continue;
      }
      const conf = argv.find((a) => a.startsWith("--conf-file="))?.slice("--conf-file=".length);
      const m = conf && /\/containers\/cni\/dnsname\/([^/]+)\/dnsmasq\.conf$/.exec(conf);
      if (!conf || !m || conf.startsWith(`${root}/`)) continue;
      const net = m[1]!;
      // Its path as the old runner saw it; /run there was RUNTIME_DIR/rootless-netns/run.
      const hosts = `${conf.startsWith("/run/") ? `${this.dir}/run${conf.slice("/run".length)}` : conf}`.replace(/dnsmasq\.conf$/, "addnhosts");
      await killAndWait(pid);
      const dir = dnsnameDir(this.paths, net);
      try {
        if (existsSync(hosts) && !existsSync(`${dir}/addnhosts`)) {
          mkdirSync(dir, { recursive: true, mode: 0o700 });
          copyFileSync(hosts, `${dir}/addnhosts`);
        }
      } catch (e) {
        log.warn(`network ${net}: cannot keep the names of an older burrow's dnsmasq: ${messageOf(e)}`);
      }
      log.warn(`network ${net}: stopped dnsmasq ${pid} of an older burrow (files in the runtime dir); the next sandbox on it starts one from ${dir}`);
    }
  }

  /** The directories the plugin runner binds (they must exist before it starts). */
  private makeDirs(): void {
    mkdirSync(`${this.dir}/run`, { recursive: true, mode: 0o700 });
    mkdirSync(`${this.dir}/var`, { recursive: true, mode: 0o700 });
    mkdirSync(cniDataDir(this.paths), { recursive: true, mode: 0o700 });
    mkdirSync(dnsnameRuntimeDir(this.paths), { recursive: true, mode: 0o700 });
    // netavark's --config when it serves named networks (src/net/netavark/backend.ts).
    mkdirSync(this.paths.netavarkDir, { recursive: true, mode: 0o700 });
  }

  /** Stops every dnsmasq dnsname's files name (checked by pid file and config path) and removes those files. */
  private forgetDnsmasq(): void {
    for (const net of dnsnameNetworks(this.paths)) {
      const pid = stopDnsmasq(this.paths, net);
      if (pid !== null) log.warn(`stopped dnsmasq ${pid} of network ${net}: it served a rootless CNI namespace that is gone`);
    }
  }

  /** The namespace is pinned but its helper is gone (killed, crashed). */
  helperDead(): boolean {
    const st = this.readState();
    return !!st && pinHolds(this.pin, st.ino) && !this.helperAlive(st);
  }

  /**
   * Starts a new helper of the same kind for the namespace when the old one
   * died: the bridges, veths and rules inside live on, and slirp4netns's
   * --configure (pasta's --config-net) makes its interface and the default
   * route again. Returns the helper, the old and new pid, or null when
   * nothing was to be done.
   */
  revive(): Promise<{ helper: RootlessNetworkCmd; oldPid: number; pid: number } | null> {
    return this.serial(async () => {
      const st = this.readState();
      if (!st || !this.helperDead()) return null;
      // The kernel removes the dead one's tap0 a little after its exit
      // (seen: the first new slirp4netns failing on the old tap0): retry.
      const helper = helperOf(st);
      for (let attempt = 1; ; attempt++) {
        try {
          const started = await this.startHelper(st.ino, helper);
          return { helper, oldPid: st.slirpPid, pid: started.state.slirpPid };
        } catch (e) {
          if (attempt >= 5) throw e;
          await Bun.sleep(100 * attempt);
        }
      }
    });
  }

  /** Whether a ledger row is this namespace's live helper (or one being started or stopped). */
  owns(row: HelperRow): boolean {
    if (this.working > 0) return true;
    // After a logout state.json is gone until restore() writes it again: what ensure() made still
    // counts, also for a daemon started since, which knows it only from the state dir's record.
    const st = this.readState() ?? (this.made ?? this.recall())?.state;
    return row.pid !== null && st?.slirpPid === row.pid;
  }

  /** An operation is under way. */
  get settling(): boolean {
    return this.working > 0;
  }

  private runner: CniRunner | null = null;
  /** What ensure() wrote, kept for restore(): a logout may remove the files. */
  private made: Made | null = null;

  /**
   * What ensure() made, also kept in the state dir (which a logout leaves
   * alone): a daemon restarted after a logout, before its predecessor
   * rebuilt anything, still finds the namespace its bridge sandboxes are in.
   * Only for this boot and this holder's user namespace.
   */
  private get madeFile(): string {
    return `${this.paths.stateDir}/cni/${MADE_FILE}`;
  }

  private remember(made: Made): void {
    this.made = made;
    try {
      const record = { ...made, bootId: bootId(), userns: nsId("/proc/self/ns/user"), slirpStart: startTimeOf(made.state.slirpPid) };
      writePrivateRecord(`${this.paths.stateDir}/cni`, MADE_FILE, record);
    } catch (e) {
      log.warn(`cannot keep the rootless CNI namespace's state in ${this.madeFile}: ${messageOf(e)}`);
    }
  }

  /**
   * The namespace a previous daemon of this boot and holder made, if its
   * file says so and the slirp4netns it names still runs (same pid, same
   * start time, serving our pin path): that process holds the namespace,
   * so its inode number cannot have been reused by another one.
   */
  private recall(): Made | null {
    try {
      const raw = readPrivateRecord(this.madeFile, MadeFile, MADE_FILE);
      if (!raw || raw.bootId !== bootId() || raw.userns !== nsId("/proc/self/ns/user")) return null;
      if (startTimeOf(raw.state.slirpPid) !== raw.slirpStart || !this.helperAlive(raw.state)) return null;
      return { state: raw.state, resolv: raw.resolv, ...(raw.firewall ? { firewall: raw.firewall } : {}) };
    } catch {
      return null;
    }
  }

  /**
   * An open handle on the namespace while this daemon serves it. A logout's
   * rm -rf unlinks the pin file (which detaches the pin), possibly while the
   * daemon is pinning it again, and slirp4netns holds no handle: without
   * this one the namespace, with its bridge and every sandbox's veth, could
   * die in a moment when dnsmasq was being replaced (seen in the logout test
   * one run in about ten). restore() pins it again from here. Closed by
   * teardown; a daemon's exit closes it and the pin (or a process inside)
   * goes on holding the namespace.
   */
  private held: { fd: number; ino: number } | null = null;

  /** Holds the namespace the pin holds now, when it is `ino`. */
  private hold(ino: number): void {
    if (this.held?.ino === ino) return;
    this.release();
    let fd: number;
    try {
      fd = openSync(this.pin, "r");
    } catch {
      return;
    }
    if (fstatSync(fd).ino === ino) this.held = { fd, ino };
    else closeSync(fd);
  }

  private release(): void {
    if (this.held) closeSync(this.held.fd);
    this.held = null;
  }

  /** restore() pinned the namespace again and its dnsmasq processes are not settled yet. */
  private dnsmasqUnsettled = false;

  /**
   * A logout removed the runtime directory under this live namespace
   * (src/daemon/ownership.ts): makes its directory, state.json,
   * resolv.conf and pin again (from the daemon's own handle, else a
   * process inside it: unlinking the pin file detached the mount) and
   * replaces the plugin runner, whose private mount namespace lost its
   * binds of the old directories; then the dnsmasq processes. Nothing to do
   * when this daemon did not make it, or it is intact, or gone. Throws when
   * a dnsmasq could not be started again: the caller calls again (the
   * daemon's check may have run while the rm -rf was still under way, and
   * the next one finds what it removed since).
   */
  restore(): Promise<void> {
    return this.mutex.run(async () => {
      const made = this.made ?? this.recall();
      if (!made) return;
      if (!pinHolds(this.pin, made.state.ino)) {
        const handle = this.namespaceHandle(made.state);
        if (!handle) {
          log.warn("the rootless CNI namespace is gone: nothing held it after its pin was removed (bridge sandboxes lost their network)");
          return;
        }
        this.made = made;
        this.makeDirs();
        writeFileSync(this.stateFile, JSON.stringify(made.state), { mode: 0o600 });
        writeFileSync(`${this.dir}/resolv.conf`, made.resolv, { mode: 0o644 });
        // Its rules are where its plugins put them: the next DEL must look there too.
        if (made.firewall === "legacy") writeFileSync(this.firewallFile, LEGACY_MARK, { mode: 0o600 });
        if (!existsSync(this.pin)) writeFileSync(this.pin, "");
        bind(handle.path, this.pin);
        this.runner?.stop();
        this.runner = null;
        this.dnsmasqUnsettled = true;
        log.warn(`the rootless CNI namespace was pinned again from ${handle.holder}`);
      }
      this.hold(made.state.ino);
      if (!this.dnsmasqUnsettled) return;
      await this.replaceLegacyDnsmasq();
      await this.restoreDnsmasq();
      this.dnsmasqUnsettled = false;
    });
  }

  /**
   * Something that holds the namespace open, to pin it again from: the
   * daemon's own handle, else a process inside it (dnsmasq, aardvark-dns),
   * else its pasta's open handle on the pin (pasta keeps one for its whole
   * life; slirp4netns keeps none). Null when none is there.
   */
  private namespaceHandle(st: State): { path: string; holder: string } | null {
    if (this.held?.ino === st.ino) return { path: `/proc/self/fd/${this.held.fd}`, holder: "the daemon's own handle" };
    const inside = pidsInNs("net", st.ino);
    if (inside.length) return { path: `/proc/${inside[0]}/ns/net`, holder: `process ${inside[0]}` };
    if (helperOf(st) !== "pasta" || !this.helperAlive(st)) return null;
    try {
      const nsfs = statSync("/proc/self/ns/net").dev;
      for (const fd of readdirSync(`/proc/${st.slirpPid}/fd`)) {
        const path = `/proc/${st.slirpPid}/fd/${fd}`;
        try {
          const target = statSync(path);
          if (target.dev === nsfs && target.ino === st.ino) return { path, holder: `pasta ${st.slirpPid}'s handle on it` };
        } catch {} // closed meanwhile
      }
    } catch {} // pasta is gone
    return null;
  }

  /**
   * dnsname's files live in the state dir (dnsmasq.ts), which a logout
   * leaves alone, so every name is still in them. A dnsmasq that still
   * sees them (the state dir is not under /run, the usual case) goes on,
   * and the next ADD HUPs it as dnsname always does. One whose mount
   * namespace (the old runner's) reached them through the removed /run
   * (a state dir under /run, as in the tests) would re-read nothing on
   * that HUP: it is replaced by a dnsmasq started the way dnsname starts
   * one, from the same config, in the new runner's mount namespace. A
   * network with names and no dnsmasq (an earlier replacement failed half
   * way) gets one too. Throws naming the networks it could not serve.
   */
  private async restoreDnsmasq(): Promise<void> {
    const failed: string[] = [];
    for (const net of dnsnameNetworks(this.paths)) {
      const dir = dnsnameDir(this.paths, net);
      if (!existsSync(`${dir}/dnsmasq.conf`) || !hasNames(`${dir}/addnhosts`)) continue;
      const running = dnsmasqOf(this.paths, net);
      if (running && existsSync(`/proc/${running.pid}/root${dir}/addnhosts`)) continue;
      try {
        if (running) await killAndWait(running.pid);
        const track = this.hooks.helpers?.intend("dnsmasq", dnsmasqOwner(net));
        const r = await this.spawn({
          argv: [findHelper("dnsmasq") ?? "dnsmasq", "-u", "root", `--conf-file=${dir}/dnsmasq.conf`],
          env: cleanEnv(track?.env),
          stdin: "",
          timeoutMs: 10_000,
        });
        const now = dnsmasqOf(this.paths, net);
        if (r.exitCode !== 0 || !now) {
          track?.cancel();
          throw new Error(`dnsmasq exited ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
        }
        track?.spawned(now.pid);
        log.warn(`network ${net}: dnsmasq ${now.pid} serves its names now (its files were reached through the removed runtime directory)`);
      } catch (e) {
        failed.push(`network ${net}: ${messageOf(e)}`);
      }
    }
    if (failed.length) throw new Error(`cannot start dnsmasq again after the runtime directory was removed: ${failed.join("; ")}`);
  }

  /**
   * Runs a plugin (or any program) inside this namespace, through the
   * long-lived __cni-runner role (started on first use, ended with the
   * namespace). For CniRuntime's `spawn` option.
   */
  readonly spawn: PluginSpawner = (req) => {
    if (!this.runner || this.runner.dead) {
      const cfg: CniRunnerConfig = {
        netns: this.pin,
        runDir: `${this.dir}/run`,
        varDir: `${this.dir}/var`,
        keep: [this.paths.runtimeDir, cniDataDir(this.paths), dnsnameRuntimeDir(this.paths), this.paths.netavarkDir],
        resolvConf: `${this.dir}/resolv.conf`,
        detach: [pinsRoot(this.paths)],
      };
      this.runner = new CniRunner(cfg);
    }
    return this.runner.run(req);
  };

  /** The directory of the iptables names the CNI plugins find first when the namespace uses iptables-legacy. */
  private get legacyBin(): string {
    return `${this.dir}/bin`;
  }

  private get firewallFile(): string {
    return `${this.dir}/firewall`;
  }

  /**
   * A new namespace's CNI plugins get iptables-legacy when it works there
   * for both families (the kernel may lack legacy tables: then iptables as
   * the distribution chose, as before). Decided once per namespace and
   * written down (the runtime dir's mark; the state dir's record, which a
   * logout leaves), so that every later DEL looks where the ADDs wrote.
   */
  private async chooseFirewall(): Promise<"legacy" | undefined> {
    try {
      if (!this.legacyNames()) return undefined;
      for (const tool of ["iptables", "ip6tables"]) {
        const r = await this.spawn({ argv: [`${this.legacyBin}/${tool}`, "-w", "-t", "nat", "-S"], env: cleanEnv(), stdin: "", timeoutMs: 10_000 });
        if (r.exitCode !== 0) throw new Error(`${tool}-legacy answered ${r.exitCode}: ${r.stderr.trim().split("\n")[0] ?? ""}`);
      }
      writeFileSync(this.firewallFile, LEGACY_MARK, { mode: 0o600 });
      return "legacy";
    } catch (e) {
      log.debug(`the rootless namespace keeps the default iptables: ${messageOf(e)}`);
      return undefined;
    }
  }

  /** The legacy names in the namespace's bin dir (made again after a logout removed them); false without iptables-legacy. */
  private legacyNames(): boolean {
    if (existsSync(`${this.legacyBin}/iptables`)) return true;
    const multi = legacyIptablesBinary();
    if (!multi) return false;
    mkdirSync(this.legacyBin, { recursive: true, mode: 0o700 });
    for (const name of LEGACY_NAMES) {
      try {
        symlinkSync(multi, `${this.legacyBin}/${name}`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
    return true;
  }

  /** Whether this namespace's CNI plugins use iptables-legacy (chooseFirewall); only this file's exact mark says so. */
  usesLegacyIptables(): boolean {
    try {
      return readFileSync(this.firewallFile, "utf8") === LEGACY_MARK;
    } catch {
      return false;
    }
  }

  /** spawn for the CNI plugins: iptables-legacy's names first in PATH when the namespace uses it. */
  readonly pluginSpawn: PluginSpawner = (req) => {
    if (!this.usesLegacyIptables()) return this.spawn(req);
    this.legacyNames();
    return this.spawn({ ...req, env: { ...req.env, PATH: `${this.legacyBin}:${req.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` } });
  };

  /** A path for `pin` that resolves inside the runner's private mount namespace too. */
  visiblePath(pin: string): string {
    return `/proc/${process.pid}/root${pin}`;
  }

  teardown(): Promise<Error[]> {
    return this.serial(() => this.teardownNow());
  }

  /** Kills dnsmasq and anything else left inside, its helper (slirp4netns or pasta), and unpins it. */
  private async teardownNow(): Promise<Error[]> {
    const errors: Error[] = [];
    this.runner?.stop();
    this.runner = null;
    this.made = null;
    this.dnsmasqUnsettled = false;
    rmSync(this.madeFile, { force: true });
    const st = this.readState();
    if (st) {
      // By inode only while the pin holds it (src/sys/processes.ts): a stale
      // state.json's inode may name another namespace now, another daemon's.
      await withNamespace(st.ino, this.pin, () => signalAll(pidsInNs("net", st.ino), "SIGKILL"));
      try {
        const pid = st.slirpPid;
        if (helperOf(st) === "pasta") await stopHelper(pid, () => isOurPasta(pid, this.pin));
        else await stopSlirp4netnsPid(pid, this.pin);
      } catch (e) {
        errors.push(e as Error);
      }
    }
    this.release();
    try {
      umountIfMounted(this.pin);
    } catch (e) {
      errors.push(e as Error);
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
      // Its dnsmasq died with it above: dnsname's files for it go too.
      rmSync(dnsnameRoot(this.paths), { recursive: true, force: true });
      // So did netavark's bridges, rules and aardvark-dns: its state of them goes.
      rmSync(this.paths.netavarkDir, { recursive: true, force: true });
    } catch (e) {
      errors.push(e as Error);
    }
    log.debug("rootless CNI namespace torn down");
    return errors;
  }
}
