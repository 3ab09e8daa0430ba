// The rootless CNI network namespace: one per user, shared by every rootless
// bridge sandbox (podman v3's rootless-cni-ns). The CNI plugins run inside it
// (bridge, veths, iptables masquerade live there, never in the host's
// namespaces) and one slirp4netns gives it outbound connectivity. Created on
// first need, torn down with its slirp4netns and dnsmasq when the last
// bridge sandbox leaves. Daemon main thread, session namespaces.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { log } from "../../log.ts";
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

/** What the daemon lends the namespace: the helper ledger (issue 10 item 2). */
export interface RootlessNetnsHooks {
  /** Records a helper before it is spawned, owned by the namespace. */
  helpers?: { intend(kind: HelperKind): HelperTrack };
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

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
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
      return JSON.parse(readFileSync(this.stateFile, "utf8")) as State;
    } catch {
      return null;
    }
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
      if (this.alive()) return;
      if (this.exists()) await this.teardownNow();
      const t0 = performance.now();
      mkdirSync(`${this.dir}/run`, { recursive: true, mode: 0o700 });
      mkdirSync(`${this.dir}/var`, { recursive: true, mode: 0o700 });
      mkdirSync(cniDataDir(this.paths), { recursive: true, mode: 0o700 });
      try {
        const ino = await createPinnedNetns(this.pin);
        const options = parseSlirp4netnsOptions([]);
        const slirp = await this.startSlirp(ino);
        const resolv = buildResolvConf({ hostContent: readHostResolvConf().content, firstNameservers: [slirp4netnsAddresses(options).dns] });
        writeFileSync(`${this.dir}/resolv.conf`, resolv.content, { mode: 0o644 });
        this.made = { state: { ino, slirpPid: slirp.pid }, resolv: resolv.content };
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
    if (this.made) this.made.state = { ino, slirpPid: slirp.pid };
    slirp.proc.exited.then(() => {
      // Not when our own teardown (or a restart) stopped it.
      if (this.working === 0 && this.readState()?.slirpPid === slirp.pid) this.hooks.onSlirpExit?.(slirp.pid);
    });
    return slirp;
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
  private made: { state: State; resolv: string } | null = null;

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
      const made = this.made;
      if (!made || pinHolds(this.pin, made.state.ino)) return;
      const inside = pidsInNs("net", made.state.ino);
      if (!inside.length) return;
      mkdirSync(`${this.dir}/run`, { recursive: true, mode: 0o700 });
      mkdirSync(`${this.dir}/var`, { recursive: true, mode: 0o700 });
      mkdirSync(cniDataDir(this.paths), { recursive: true, mode: 0o700 });
      writeFileSync(this.stateFile, JSON.stringify(made.state), { mode: 0o600 });
      writeFileSync(`${this.dir}/resolv.conf`, made.resolv, { mode: 0o644 });
      if (!existsSync(this.pin)) writeFileSync(this.pin, "");
      bind(`/proc/${inside[0]}/ns/net`, this.pin);
      this.runner?.stop();
      this.runner = null;
      // dnsname's files went with the directory (they live in the runner's
      // /run, which is RUNTIME_DIR/rootless-netns/run): its dnsmasq would
      // hold the bridge's port 53 against the one the next ADD starts.
      // Names of sandboxes made before the logout are lost; their addresses
      // and routes are not.
      signalAll(
        inside.filter((pid) => commOf(pid) === "dnsmasq"),
        "SIGTERM",
      );
      log.warn(`the rootless CNI namespace was pinned again from process ${inside[0]}`);
    });
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
        keep: [this.paths.runtimeDir, cniDataDir(this.paths)],
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
    } catch (e) {
      errors.push(e as Error);
    }
    log.debug("rootless CNI namespace torn down");
    return errors;
  }
}
