// podman 5's rootless network namespace, shared (docs/netavark.md "Sharing
// podman's rootless network namespace"; the protocol read from podman's
// source: docs/podman-rootless-netns.md). When the holder joined podman's
// user namespace (src/podman-pause.ts), netavark runs where podman
// runs it: in podman's rootless netns, with podman's --config, so that one
// bridge, one firewall state and one aardvark-dns serve podman's containers
// and burrow's sandboxes alike, and each reaches the other by name.
//
// podman 5 counts the users of that namespace (`ref-count`, under its
// netavark.lock) and removes it, with its pasta, when the count reaches 0.
// burrow takes one reference the supported way: a keeper process run by
// `podman unshare --rootless-netns`, which holds it for the keeper's life
// (podman made the namespace for it when there was none). podman 4 counts
// only its own running containers on bridge networks (and its `unshare
// --rootless-netns` holds nothing), so there burrow first starts an anchor:
// a podman container of its own on podman's default network, `tail --pid
// HOLDER` in a tree of nothing but /usr read-only, removed with the
// keeper (and by podman itself when the holder ends: --rm). The keeper is
// `tail --pid HOLDER`, which waits while the holder lives (no fork while it
// waits); the daemon ends it when the last
// sandbox on a shared network leaves. It is detached and recorded in the
// state dir, so a daemon killed with sandboxes attached leaves the namespace
// to them, and the next daemon adopts the keeper. netavark, ip and the
// like run through a runner of burrow's in the keeper's netns (spawn()).
import * as v from "valibot";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, constants } from "node:fs";
import { BurrowError, messageOf } from "../../errors.ts";
import { log } from "../../log.ts";
import { Mutex } from "../../mutex.ts";
import { type Paths, pinsRoot } from "../../paths.ts";
import { readPrivateRecord, writePrivateRecord } from "../../private-file.ts";
import { cleanEnv } from "../../sys/env.ts";
import { nsId } from "../../sys/ns.ts";
import { isRunning, parentOf, startTimeOf } from "../../sys/processes.ts";
import type { DnsView } from "../../dns/etc-content.ts";
import { findHelper, helperConf } from "../../machine/helpers.ts";
import { DEFAULT_NETWORK_NAME } from "./networks-dir.ts";
import { podmanMajor, sharedPause } from "../../podman-pause.ts";
import { CniRunner } from "../cni/rootless-netns.ts";
import { bunSpawner, type SpawnRequest, type SpawnResult } from "../cni/spawn.ts";

const Keeper = v.object({
  /** The keeper (tail), inside podman's rootless netns and mount namespace. */
  pid: v.pipe(v.number(), v.integer(), v.minValue(1)),
  startTime: v.string(),
  /** `podman unshare --rootless-netns`, its parent: it drops the reference when the keeper ends. */
  podmanPid: v.pipe(v.number(), v.integer(), v.minValue(1)),
  podmanStart: v.string(),
  /** podman 4: the anchor container's id (podman keeps its namespace while a container of its own runs on it). */
  anchor: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))),
});
type Keeper = v.InferOutput<typeof Keeper>;

/** podman's info.json beside its rootless netns: the addresses pasta maps to the host. */
const Info = v.looseObject({
  MapGuestIps: v.optional(v.nullable(v.array(v.pipe(v.string(), v.ip())))),
  DnsForwardIps: v.optional(v.nullable(v.array(v.pipe(v.string(), v.ip())))),
});

// $1: the holder's pid. Prints its own pid (the process whose netns the
// runner joins), lets go of the pipe and becomes `tail --pid`, which ends
// when the holder does (it looks every 2 s, without a fork): a session that
// ended without its daemon stopping the keeper still drops podman's
// reference. SIGTERM (the daemon's stop) ends it at once.
const KEEP = 'echo "$$"; exec tail -f -s 2 --pid="$1" /dev/null </dev/null >/dev/null';

/** The host id the user namespace maps to `inside` (its first line that does), from /proc/self/{uid,gid}_map. */
export function outsideId(mapText: string, inside = 0): number | null {
  for (const line of mapText.split("\n")) {
    const [i, o, n] = line.trim().split(/\s+/).map(Number);
    if (i === undefined || o === undefined || n === undefined || [i, o, n].some((x) => !Number.isInteger(x))) continue;
    if (inside >= i && inside < i + n) return o + (inside - i);
  }
  return null;
}

export class PodmanRootlessNetns {
  /** podman's rootless NetworkRunDir: netavark's --config, ipam.db, aardvark-dns's files. */
  readonly configDir: string;
  private readonly recordFile: string;
  private readonly mutex = new Mutex();
  private keeper: Keeper | null;

  constructor(
    readonly paths: Paths,
    /** The holder: the keeper ends when it does. */
    readonly holder: number,
    readonly xdgRuntimeDir: string,
  ) {
    this.configDir = `${xdgRuntimeDir}/containers/networks`;
    this.recordFile = `${paths.stateDir}/podman-netns.json`;
    this.keeper = this.recall();
  }

  private recall(): Keeper | null {
    try {
      const k = readPrivateRecord(this.recordFile, Keeper, "podman-netns.json");
      return k && startTimeOf(k.pid) === k.startTime ? k : null;
    } catch (e) {
      log.warn(`podman-netns.json: ${messageOf(e)}`);
      return null;
    }
  }

  /** The keeper lives: podman's namespace is held and reachable. */
  alive(): boolean {
    const k = this.keeper;
    return !!k && startTimeOf(k.pid) === k.startTime && isRunning(k.pid);
  }

  get inode(): number | null {
    if (!this.alive()) return null;
    const id = nsId(`/proc/${this.keeper!.pid}/ns/net`);
    const m = id ? /^net:\[(\d+)\]$/.exec(id) : null;
    return m ? Number(m[1]) : null;
  }

  /** Takes podman's namespace (made by podman when there is none), once. */
  ensure(): Promise<void> {
    return this.mutex.run(async () => {
      if (this.alive()) {
        if (this.podmanLetGo(this.keeper!))
          throw new BurrowError(
            `podman 4 removed its rootless network namespace under burrow's sandboxes (burrow's anchor container ${this.anchorName} is gone: podman rm -a or system prune?), so they have lost their outbound connection and podman's containers; remove the sandboxes on netavark networks (burrow rm -f NAME) and run them again`,
            { kind: "setup" },
          );
        return;
      }
      this.keeper = await this.start();
    });
  }

  /**
   * podman 4 only: podman no longer has the namespace the keeper holds. A
   * user's `podman rm -a` or `system prune` removes the anchor, and podman
   * then removes its namespace (its file and slirp4netns) with it; the
   * keeper's copy lives on apart from podman's next one. Seen from the
   * pause process's mount namespace, where podman binds its netns file.
   */
  private podmanLetGo(k: Keeper): boolean {
    const pause = k.anchor ? sharedPause() : null;
    if (pause === null) return false;
    try {
      const own = statSync(`/proc/${k.pid}/ns/net`);
      const dir = `/proc/${pause}/root${this.xdgRuntimeDir}/netns`;
      for (const f of readdirSync(dir)) {
        if (!f.startsWith("rootless-netns-")) continue;
        try {
          const st = statSync(`${dir}/${f}`);
          if (st.ino === own.ino && st.dev === own.dev) return false;
        } catch {}
      }
      return true;
    } catch {
      // Not readable (the keeper ending, the pause process gone): not this question's to answer.
      return false;
    }
  }

  private async start(): Promise<Keeper> {
    const podman = findHelper("podman");
    if (!podman) throw new BurrowError("podman is not installed any more: its rootless network namespace cannot be shared", { kind: "setup" });
    // The pause process whose mount namespace podman runs in, in this very user namespace.
    const pause = sharedPause();
    if (pause === null)
      throw new BurrowError(
        "podman's pause process is gone or in another user namespace (podman system migrate or reset?): this burrow session can no longer share podman's network namespace; remove its sandboxes (burrow rm -fa) and the next session joins podman's new one",
        { kind: "setup" },
      );
    const env = this.podmanEnv();
    // podman 4: its own container on the namespace first, so that podman
    // keeps the namespace while burrow's sandboxes use it.
    const anchor = (await this.podmanMajorOf(podman)) === 4 ? await this.startAnchor(podman, pause, env) : undefined;
    try {
      return await this.startKeeper(podman, pause, env, anchor);
    } catch (e) {
      if (anchor) for (const err of await this.removeAnchor(anchor)) log.warn(err.message);
      throw e;
    }
  }

  /** podman's environment when burrow runs it: podman believes it re-exec'd itself into its user namespace (which this daemon is in). */
  private podmanEnv(): Record<string, string> {
    const uid = outsideId(readFileSync("/proc/self/uid_map", "utf8"));
    const gid = outsideId(readFileSync("/proc/self/gid_map", "utf8"));
    if (uid === null || gid === null) throw new BurrowError("cannot tell the user's own ids from this user namespace's maps", { kind: "setup" });
    return cleanEnv({
      _CONTAINERS_USERNS_CONFIGURED: "done",
      _CONTAINERS_ROOTLESS_UID: String(uid),
      _CONTAINERS_ROOTLESS_GID: String(gid),
      XDG_RUNTIME_DIR: this.xdgRuntimeDir,
      PODMAN_IGNORE_CGROUPSV1_WARNING: "1",
    });
  }

  private major: number | null | undefined;

  /** podman's major version, asked once per daemon. */
  private async podmanMajorOf(podman: string): Promise<number | null> {
    if (this.major !== undefined) return this.major;
    const r = await this.runPodman(podman, null, ["--version"], cleanEnv({ PODMAN_IGNORE_CGROUPSV1_WARNING: "1" }), 10_000);
    this.major = r.exitCode === 0 ? podmanMajor(r.stdout) : null;
    return this.major;
  }

  /** One podman command (the plugins' spawner: output, exit code, deadline), in the pause process's mount namespace when `pause` is given. */
  private runPodman(podman: string, pause: number | null, args: string[], env: Record<string, string>, timeoutMs: number): Promise<SpawnResult> {
    const argv = pause === null ? [podman, ...args] : ["nsenter", `--mount=/proc/${pause}/ns/mnt`, "--", podman, ...args];
    return bunSpawner({ argv, env, stdin: "", timeoutMs });
  }

  /** The anchor's name: one per session (its holder). */
  private get anchorName(): string {
    return `burrow-anchor-${this.holder}`;
  }

  /**
   * podman 4's anchor: a container of burrow's on podman's default network
   * (no DNS there, so no name in anyone's resolver), `tail --pid HOLDER` in
   * the host's pid namespace, so that it ends with the session if no daemon
   * removes it first, and podman removes it then (--rm), and with it its
   * namespace when it was the last. Its root is an empty directory of
   * burrow's with /usr bound read-only; no image is pulled, no capability kept.
   */
  private async startAnchor(podman: string, pause: number, env: Record<string, string>): Promise<string> {
    const root = `${this.paths.stateDir}/podman-anchor`;
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { mode: 0o700 });
    for (const dir of ["bin", "lib", "lib64", "sbin"]) symlinkSync(`usr/${dir}`, `${root}/${dir}`);
    const net = helperConf().defaultNetwork ?? DEFAULT_NETWORK_NAME;
    const run = () =>
      this.runPodman(
        podman,
        pause,
        [
          "run",
          "-d",
          "--rm",
          "--name",
          this.anchorName,
          "--label",
          "io.burrow.anchor=1",
          "--network",
          net,
          "--pid",
          "host",
          "--read-only",
          "--pull",
          "never",
          "--log-driver",
          "none",
          "--cap-drop",
          "all",
          "--security-opt",
          "no-new-privileges",
          "-v",
          "/usr:/usr:ro",
          "--rootfs",
          root,
          "/usr/bin/tail",
          "-f",
          "-s",
          "2",
          `--pid=${this.holder}`,
          "/dev/null",
        ],
        env,
        60_000,
      );
    let r = await run();
    // One of this session's name left by a daemon that could not remove it: no sandbox is on it (the keeper ended).
    if (r.exitCode !== 0 && /already in use/.test(r.stderr)) {
      await this.runPodman(podman, pause, ["rm", "-f", "-t", "0", "--ignore", this.anchorName], env, 30_000);
      r = await run();
    }
    const id = r.stdout.trim().split("\n").at(-1) ?? "";
    if (r.exitCode !== 0 || !/^[0-9a-f]{64}$/.test(id)) {
      const why = (r.stderr.trim().split("\n").filter(Boolean).at(-1) ?? "").replace(/^Error: /, "");
      // A container podman made and could not start, if any, by name: nothing of the attempt stays.
      await this.removeAnchor(this.anchorName);
      throw new BurrowError(
        `podman 4 could not start burrow's anchor container on network ${net}: ${why || `podman run exited with ${r.exitCode ?? "a signal"}`}`,
        {
          kind: "setup",
        },
      );
    }
    log.debug(`podman 4's rootless network namespace anchored by container ${id.slice(0, 12)} (${this.anchorName})`);
    return id;
  }

  /** Removes the anchor, by id or name (podman then removes its namespace when nothing of its own is left on it). */
  private async removeAnchor(idOrName: string): Promise<Error[]> {
    const label = /^[0-9a-f]{64}$/.test(idOrName) ? idOrName.slice(0, 12) : idOrName;
    const podman = findHelper("podman");
    const pause = sharedPause();
    // Without podman's pause process it cannot be reached; it ends with the holder (tail --pid) and podman removes it.
    if (!podman || pause === null)
      return [new Error(`burrow's anchor container ${label} is left to end with the session: podman or its pause process is gone`)];
    try {
      const r = await this.runPodman(podman, pause, ["rm", "-f", "-t", "0", "--ignore", idOrName], this.podmanEnv(), 60_000);
      if (r.exitCode !== 0)
        return [new Error(`podman rm of burrow's anchor container ${label}: ${r.stderr.trim().split("\n").at(-1) ?? `exit ${r.exitCode}`}`)];
      // Its root, the state dir's scaffolding: made again with the next anchor.
      rmSync(`${this.paths.stateDir}/podman-anchor`, { recursive: true, force: true });
      return [];
    } catch (e) {
      return [new Error(`podman rm of burrow's anchor container ${label}: ${messageOf(e)}`)];
    }
  }

  private async startKeeper(podman: string, pause: number, env: Record<string, string>, anchor: string | undefined): Promise<Keeper> {
    const logFile = `${this.paths.runtimeDir}/podman-netns.log`;
    const errFd = openSync(logFile, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    let proc: ReturnType<typeof Bun.spawn<"ignore", "pipe", number>>;
    try {
      // podman believes it re-exec'd itself into its user namespace (which
      // this daemon is in), in its pause process's mount namespace.
      proc = Bun.spawn(
        [
          "nsenter",
          `--mount=/proc/${pause}/ns/mnt`,
          "--",
          podman,
          "unshare",
          "--rootless-netns",
          "/bin/sh",
          "-c",
          KEEP,
          "burrow-podman-netns",
          String(this.holder),
        ],
        {
          env,
          stdin: "ignore",
          stdout: "pipe",
          stderr: errFd,
          detached: true,
        },
      );
    } finally {
      closeSync(errFd);
    }
    const failure = () => {
      let text = "";
      try {
        // podman's last line, without its own "Error: ".
        text = (readFileSync(logFile, "utf8").trim().split("\n").filter(Boolean).at(-1) ?? "").replace(/^Error: /, "");
      } catch {}
      return text;
    };
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    let line = "";
    try {
      const reader = proc.stdout.getReader();
      const dec = new TextDecoder();
      while (!line.includes("\n")) {
        const r = await reader.read();
        if (r.done) break;
        line += dec.decode(r.value, { stream: true });
      }
      reader.releaseLock();
    } finally {
      clearTimeout(timer);
    }
    // The keeper's own word, checked: podman's child, in another network namespace.
    const printed = /^([1-9][0-9]{0,9})\n/.exec(line)?.[1];
    const pid = printed && parentOf(Number(printed)) === proc.pid ? Number(printed) : null;
    const startTime = pid ? startTimeOf(pid) : null;
    const podmanStart = startTimeOf(proc.pid);
    if (!pid || !startTime || !podmanStart || nsId(`/proc/${pid}/ns/net`) === nsId("/proc/self/ns/net")) {
      // A keeper that runs is ended, so that podman counts its reference down; otherwise podman is.
      if (pid && startTime) process.kill(pid, "SIGTERM");
      else proc.kill("SIGKILL");
      throw new BurrowError(`podman could not lend its rootless network namespace: ${failure() || "podman unshare --rootless-netns ended"}`, { kind: "setup" });
    }
    proc.unref();
    const keeper: Keeper = { pid, startTime, podmanPid: proc.pid, podmanStart, ...(anchor ? { anchor } : {}) };
    try {
      writePrivateRecord(this.paths.stateDir, "podman-netns.json", keeper);
    } catch (e) {
      // Unrecorded, no later daemon would find it to end: ended now (podman counts its reference down).
      process.kill(pid, "SIGTERM");
      throw e;
    }
    log.debug(`podman's rootless network namespace held by keeper ${pid} (podman ${proc.pid})`);
    return keeper;
  }

  /** Lets go of podman's namespace: podman removes it when nobody else holds it. Waits until podman has done so. */
  stop(): Promise<Error[]> {
    return this.mutex.run(async () => {
      const k = this.keeper ?? this.recall();
      this.keeper = null;
      this.dropRunner();
      if (!k) return [];
      try {
        if (startTimeOf(k.pid) === k.startTime) process.kill(k.pid, "SIGTERM");
      } catch (e) {
        return [new Error(`cannot end the keeper of podman's rootless network namespace (${k.pid}): ${messageOf(e)}`)];
      }
      // podman takes its lock, counts the reference down, and removes the namespace when it was the last.
      // A zombie counts as ended: after a daemon restart podman is not this daemon's child to reap.
      const runs = () => startTimeOf(k.podmanPid) === k.podmanStart && isRunning(k.podmanPid);
      const end = Date.now() + 10_000;
      while (runs() && Date.now() < end) await Bun.sleep(10);
      const errors = runs() ? [new Error(`podman ${k.podmanPid} still runs 10 s after its keeper ended`)] : [];
      // podman 4: the anchor goes last, and podman removes the namespace with it when it was its last container there.
      if (k.anchor) errors.push(...(await this.removeAnchor(k.anchor)));
      rmSync(this.recordFile, { force: true });
      return errors;
    });
  }

  private runner: CniRunner | null = null;

  /** burrow's runner's own files (its /run, the resolv.conf it binds): in the runtime dir, made again after a logout. */
  private get runnerDir(): string {
    return `${this.paths.runtimeDir}/podman-netns`;
  }

  /**
   * Runs one process in podman's rootless netns, through a runner of
   * burrow's (the __cni-runner role, as for burrow's own namespace): it
   * joins the keeper's netns and makes its own private /run with burrow's
   * runtime dir and podman's --config dir kept at their paths and the
   * namespace's resolv.conf (podman's: pasta's DNS forwarder first), as
   * podman's own mount set-up does for netavark. Not the keeper's mount
   * namespace: podman binds $XDG_RUNTIME_DIR into it below podman's run
   * dir, so a logout's rm -rf detaches it there for good, whereas a runner
   * is made again (dropRunner()).
   */
  spawn(req: SpawnRequest): Promise<SpawnResult> {
    const k = this.keeper;
    if (!k || !this.alive())
      return Promise.resolve({ exitCode: null, stdout: "", stderr: "podman's rootless network namespace is not held (its keeper ended)" });
    if (!this.runner || this.runner.dead) {
      const dir = this.runnerDir;
      mkdirSync(`${dir}/run`, { recursive: true, mode: 0o700 });
      mkdirSync(`${dir}/var`, { recursive: true, mode: 0o700 });
      mkdirSync(this.configDir, { recursive: true, mode: 0o700 });
      writeFileSync(`${dir}/resolv.conf`, this.resolvConf(), { mode: 0o600 });
      this.runner = new CniRunner({
        netns: `/proc/${k.pid}/ns/net`,
        runDir: `${dir}/run`,
        varDir: `${dir}/var`,
        keep: [this.paths.runtimeDir, this.configDir],
        resolvConf: `${dir}/resolv.conf`,
        detach: [pinsRoot(this.paths)],
      });
    }
    return this.runner.run(req);
  }

  /** podman's own files beside its namespace: podman 5's, then podman 4's (its tmp dir). */
  private get podmanNetnsDirs(): string[] {
    return [`${this.configDir}/rootless-netns`, `${this.xdgRuntimeDir}/libpod/tmp/rootless-netns`];
  }

  /** podman's resolv.conf for its namespace (pasta's or slirp4netns's DNS forwarder, then the host's servers), else one naming the forwarder from its info.json, else the host's. */
  private resolvConf(): string {
    for (const dir of this.podmanNetnsDirs) {
      try {
        const text = readFileSync(`${dir}/resolv.conf`, "utf8");
        if (/^nameserver\s/m.test(text)) return text;
      } catch {}
    }
    try {
      const info = v.safeParse(Info, JSON.parse(readFileSync(`${this.configDir}/rootless-netns/info.json`, "utf8")));
      const forward = info.success ? info.output.DnsForwardIps?.[0] : undefined;
      if (forward) return `nameserver ${forward}\n`;
    } catch {}
    return readFileSync("/etc/resolv.conf", "utf8");
  }

  /** Ends the runner: the next process runs in a new one. */
  dropRunner(): void {
    this.runner?.stop();
    this.runner = null;
  }

  /**
   * After a logout: a runner whose /run still holds the removed runtime dir
   * (not the one made again) is ended, so that the next process runs in a
   * new runner that sees the new one. A runner that sees the runtime dir as
   * it is now is kept: this runs on every restore, also when the first
   * sandbox's pins dir appears while that sandbox's setup runs in it.
   */
  dropStaleRunner(): void {
    const r = this.runner;
    if (!r || r.dead) return;
    try {
      const seen = statSync(`/proc/${r.pid}/root${this.paths.runtimeDir}`);
      const now = statSync(this.paths.runtimeDir);
      if (seen.ino === now.ino && seen.dev === now.dev) return;
    } catch {}
    this.dropRunner();
  }

  /** A path for `pin` that resolves in podman's mount namespace too. */
  visiblePath(pin: string): string {
    return `/proc/${process.pid}/root${pin}`;
  }

  /**
   * For `info`: the helper (podman's pasta or slirp4netns) serving podman's
   * namespace now, from podman's pid file, checked by the process's name.
   */
  helperInfo(): { helper: string; pid: number | null; why: string } {
    const why = `podman's rootless network namespace, shared: burrow's session is in podman${this.major ? ` ${this.major}` : ""}'s user namespace${this.keeper?.anchor ? `, held by burrow's anchor container ${this.anchorName}` : ""}`;
    const pidFiles = [`${this.podmanNetnsDirs[0]}/rootless-netns-conn.pid`, `${this.podmanNetnsDirs[1]}/rootless-netns-slirp4netns.pid`];
    for (const file of pidFiles) {
      try {
        const text = readFileSync(file, "utf8").trim();
        if (/^[1-9][0-9]{0,9}$/.test(text)) {
          const comm = readFileSync(`/proc/${text}/comm`, "utf8").trim();
          const helper = comm.startsWith("pasta") ? "pasta" : comm.startsWith("slirp4netns") ? "slirp4netns" : null;
          if (helper) return { helper, pid: Number(text), why };
        }
      } catch {}
    }
    // No namespace now: podman makes one, with containers.conf's helper (pasta unless it says otherwise).
    return { helper: helperConf().defaultRootlessNetworkCmd ?? "pasta", pid: null, why: `${why} (made by podman when a sandbox first needs it)` };
  }

  /** host.containers.internal: the address pasta maps to the host (podman's --map-guest-addr). */
  hostView(): Partial<Pick<DnsView, "hostContainersInternal" | "hostAddressesInside">> {
    try {
      const info = v.safeParse(Info, JSON.parse(readFileSync(`${this.configDir}/rootless-netns/info.json`, "utf8")));
      const ip = info.success ? info.output.MapGuestIps?.[0] : undefined;
      return ip ? { hostContainersInternal: ip } : {};
    } catch {
      return {};
    }
  }
}
