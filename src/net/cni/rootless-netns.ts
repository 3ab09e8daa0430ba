// The rootless CNI network namespace: one per user, shared by every rootless
// bridge sandbox (podman v3's rootless-cni-ns). The CNI plugins run inside it
// (bridge, veths, iptables masquerade live there, never in the host's
// namespaces) and one slirp4netns gives it outbound connectivity. Created on
// first need, torn down with its slirp4netns and dnsmasq when the last
// bridge sandbox leaves. Daemon main thread, session namespaces.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as v from "valibot";
import { log } from "../../log.ts";
import { nsId } from "../../sys/ns.ts";
import { Mutex } from "../../mutex.ts";
import type { Paths } from "../../paths.ts";
import { createPinnedNetns, pinHolds } from "../../namespaces/pins.ts";
import { pidsInNs, signalAll, withNamespace } from "../../sys/processes.ts";
import { bind, umountIfMounted } from "../../sys/mount.ts";
import { ROLES, spawnRole } from "../../roles.ts";
import { buildResolvConf, readHostResolvConf } from "../../dns/resolvconf.ts";
import { parseSlirp4netnsOptions, slirp4netnsAddresses } from "../slirp4netns/options.ts";
import { probeSlirp4netns } from "../slirp4netns/probe.ts";
import { isOurSlirp4netns, startSlirp4netns, stopSlirp4netnsPid } from "../slirp4netns/process.ts";
import { CniRunnerReply, parseMessage, type CniRunnerConfig } from "../../messages.ts";
import type { PluginSpawner, SpawnRequest, SpawnResult } from "./spawn.ts";
import type { HelperKind, HelperRow, HelperTrack } from "../../state/helpers.ts";
import { dnsmasqOf, dnsmasqOwner, dnsnameDir, dnsnameNetworks, dnsnameRoot, dnsnameRuntimeDir, stopDnsmasq } from "./dnsmasq.ts";
import { findHelper } from "../../machine/helpers.ts";
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
  /** Its slirp4netns exited while the namespace is in use (src/net/cni/rootless-supervisor.ts restarts it). */
  onSlirpExit?(pid: number): void;
}

/**
 * The daemon's end of one __cni-runner: requests as JSON lines on its
 * stdin, replies by id on its stdout. A runner that died fails what was
 * pending and is replaced on the next request.
 */
class CniRunner {
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

interface State {
  ino: number;
  slirpPid: number;
}

interface Made {
  state: State;
  resolv: string;
}

const MadeFile = v.object({
  state: v.object({ ino: v.number(), slirpPid: v.number() }),
  resolv: v.string(),
  bootId: v.string(),
  userns: v.nullable(v.string()),
  slirpStart: v.nullable(v.string()),
});

function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "";
  }
}

/** SIGKILL, then wait (up to 2 s) until the process is gone: its sockets closed. */
async function killAndWait(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGKILL");
  } catch {}
  for (let i = 0; i < 100 && startTimeOf(pid) !== null; i++) await Bun.sleep(20);
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
      return JSON.parse(readFileSync(this.stateFile, "utf8")) as State;
    } catch {
      return null;
    }
  }

  /** The pinned namespace's inode number (null when there is none): tells one namespace from the next. */
  get inode(): number | null {
    return this.readState()?.ino ?? null;
  }

  /** Alive: pinned, and its slirp4netns still running. */
  alive(): boolean {
    const st = this.readState();
    return !!st && pinHolds(this.pin, st.ino) && isOurSlirp4netns(st.slirpPid, this.pin);
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
        const ino = await createPinnedNetns(this.pin);
        const options = parseSlirp4netnsOptions([]);
        const slirp = await this.startSlirp(ino);
        const resolv = buildResolvConf({ hostContent: readHostResolvConf().content, firstNameservers: [slirp4netnsAddresses(options).dns] });
        writeFileSync(`${this.dir}/resolv.conf`, resolv.content, { mode: 0o644 });
        this.remember({ state: { ino, slirpPid: slirp.pid }, resolv: resolv.content });
        log.debug(`rootless CNI namespace up in ${(performance.now() - t0).toFixed(1)} ms`);
      } catch (e) {
        await this.teardownNow();
        throw e;
      }
    });
  }

  /** Starts slirp4netns for the pinned namespace and writes the state naming it. */
  private async startSlirp(ino: number): Promise<{ pid: number }> {
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
    // The state first: a failure below must still find slirp4netns to stop.
    writeFileSync(this.stateFile, JSON.stringify({ ino, slirpPid: slirp.pid } satisfies State), { mode: 0o600 });
    // restore() after a logout writes the state of the slirp4netns that runs now.
    // (A daemon restarted since ensure() has only the file: it is kept true too.)
    const made = this.made ?? this.recall();
    if (made) this.remember({ ...made, state: { ino, slirpPid: slirp.pid } });
    slirp.proc.exited.then(() => {
      // Not when our own teardown (or a restart) stopped it.
      if (this.working === 0 && this.readState()?.slirpPid === slirp.pid) this.hooks.onSlirpExit?.(slirp.pid);
    });
    return slirp;
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

  /** The namespace is pinned but its slirp4netns is gone (killed, crashed). */
  slirpDead(): boolean {
    const st = this.readState();
    return !!st && pinHolds(this.pin, st.ino) && !isOurSlirp4netns(st.slirpPid, this.pin);
  }

  /**
   * Starts a new slirp4netns for the namespace when the old one died: the
   * bridges, veths and rules inside live on, and --configure makes tap0
   * and the default route again. Returns the old and new pid, or null when
   * nothing was to be done.
   */
  revive(): Promise<{ oldPid: number; pid: number } | null> {
    return this.serial(async () => {
      const st = this.readState();
      if (!st || !this.slirpDead()) return null;
      // The kernel removes the dead one's tap0 a little after its exit
      // (seen: the first new slirp4netns failing on the old tap0): retry.
      for (let attempt = 1; ; attempt++) {
        try {
          const slirp = await this.startSlirp(st.ino);
          return { oldPid: st.slirpPid, pid: slirp.pid };
        } catch (e) {
          if (attempt >= 5) throw e;
          await Bun.sleep(100 * attempt);
        }
      }
    });
  }

  /** Whether a ledger row is this namespace's live slirp4netns (or one being started or stopped). */
  owns(row: HelperRow): boolean {
    if (this.working > 0) return true;
    return row.pid !== null && this.readState()?.slirpPid === row.pid;
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
      if (startTimeOf(raw.state.slirpPid) !== raw.slirpStart || !isOurSlirp4netns(raw.state.slirpPid, this.pin)) return null;
      return { state: raw.state, resolv: raw.resolv };
    } catch {
      return null;
    }
  }

  /**
   * A logout removed the runtime directory under this live namespace
   * (src/daemon/ownership.ts): makes its directory, state.json,
   * resolv.conf and pin again (the pin from a process inside it: unlinking
   * the pin file detached the mount) and replaces the plugin runner, whose
   * private mount namespace lost its binds of the old directories. Nothing
   * to do when this daemon did not make it, or it is intact, or gone.
   */
  restore(): Promise<void> {
    return this.mutex.run(async () => {
      const made = this.made ?? this.recall();
      if (!made || pinHolds(this.pin, made.state.ino)) return;
      const inside = pidsInNs("net", made.state.ino);
      if (!inside.length) return;
      this.made = made;
      this.makeDirs();
      writeFileSync(this.stateFile, JSON.stringify(made.state), { mode: 0o600 });
      writeFileSync(`${this.dir}/resolv.conf`, made.resolv, { mode: 0o644 });
      if (!existsSync(this.pin)) writeFileSync(this.pin, "");
      bind(`/proc/${inside[0]}/ns/net`, this.pin);
      this.runner?.stop();
      this.runner = null;
      log.warn(`the rootless CNI namespace was pinned again from process ${inside[0]}`);
      await this.replaceLegacyDnsmasq();
      await this.restoreDnsmasq();
    });
  }

  /**
   * dnsname's files live in the state dir (dnsmasq.ts), which a logout
   * leaves alone, so every name is still in them. A dnsmasq that still
   * sees them (the state dir is not under /run, the usual case) goes on,
   * and the next ADD HUPs it as dnsname always does. One whose mount
   * namespace (the old runner's) reached them through the removed /run
   * (a state dir under /run, as in the tests) would re-read nothing on
   * that HUP: it is replaced by a dnsmasq started the way dnsname starts
   * one, from the same config, in the new runner's mount namespace.
   */
  private async restoreDnsmasq(): Promise<void> {
    for (const net of dnsnameNetworks(this.paths)) {
      const dir = dnsnameDir(this.paths, net);
      const running = dnsmasqOf(this.paths, net);
      // None running: the next ADD starts one from the same files (dnsname's way).
      if (!running || existsSync(`/proc/${running.pid}/root${dir}/addnhosts`)) continue;
      if (!existsSync(`${dir}/dnsmasq.conf`) || !existsSync(`${dir}/addnhosts`)) continue;
      try {
        await killAndWait(running.pid);
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
        log.warn(`network ${net}: cannot start its dnsmasq again after the runtime directory was removed: ${messageOf(e)}`);
      }
    }
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
      };
      this.runner = new CniRunner(cfg);
    }
    return this.runner.run(req);
  };

  /** A path for `pin` that resolves inside the runner's private mount namespace too. */
  visiblePath(pin: string): string {
    return `/proc/${process.pid}/root${pin}`;
  }

  teardown(): Promise<Error[]> {
    return this.serial(() => this.teardownNow());
  }

  /** Kills dnsmasq and anything else left inside, its slirp4netns, and unpins it. */
  private async teardownNow(): Promise<Error[]> {
    const errors: Error[] = [];
    this.runner?.stop();
    this.runner = null;
    this.made = null;
    rmSync(this.madeFile, { force: true });
    const st = this.readState();
    if (st) {
      // By inode only while the pin holds it (src/sys/processes.ts): a stale
      // state.json's inode may name another namespace now, another daemon's.
      await withNamespace(st.ino, this.pin, () => signalAll(pidsInNs("net", st.ino), "SIGKILL"));
      try {
        await stopSlirp4netnsPid(st.slirpPid, this.pin);
      } catch (e) {
        errors.push(e as Error);
      }
    }
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
