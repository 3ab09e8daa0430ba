// Creating a sandbox: its row, files, pinned namespaces, network and ports,
// each step pushing its undo on a Rollback that unwinds them all (every
// error reported) when a later step fails. Daemon main thread.
import { refuseAcceleration } from "../accelerate/scope-of.ts";
import { checkAccelerationSupport } from "../accelerate/supervisor.ts";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { BurrowError, EXIT, Rollback, messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { enterFifo, hiddenFromSandboxes, pinDir, sandboxDir, sandboxLog, sandboxStateDir } from "../paths.ts";
import { ensurePrivateDir } from "../private-file.ts";
import type { CreateRequest, EnterTarget } from "../protocol.ts";
import { claimSpareHostname, createPinned, removePins, type SpareAhead } from "../namespaces/pins.ts";
import { etcBinds, etcFiles, writeInPlace } from "../sandbox/files.ts";
import { killAll, pidCounter, startTimeOf } from "../sys/processes.ts";
import { nameInUse, type Sandbox } from "../state/sandboxes.ts";
import { spawnEnterStep } from "../sandbox/enter-spawn.ts";
import { etcContent } from "../dns/etc-content.ts";
import { enterTarget, now, sandboxLabel, setupContext, type DaemonContext } from "./context.ts";
import { signalNumber, type SandboxReleases } from "./release.ts";
import { isDiskFull } from "../state/full.ts";
import { freeName, retryDeps } from "./create-retry.ts";
import { checkMapped, parseIdMap } from "../sandbox/user.ts";
import { detachedOutput } from "./log-copy.ts";
import { LOG_FILE } from "../sandbox-log.ts";
import { checkRestartRequest } from "../sandbox/restart-policy.ts";
import { pinsAsFds } from "./ownership.ts";
import { quote } from "../quote.ts";
import { knownCapabilities, PODMAN_DEFAULT_CAPABILITIES, resolveCapabilities } from "../sandbox/capabilities.ts";
import { findHelper, helperConf } from "../machine/helpers.ts";
import { checkEgressRequest, prepareEgressSockets, resolvConfServers, startEgress, type EgressNetwork } from "./egress.ts";
import { rootlessDefault } from "../machine/rootless-default.ts";
import { sendEnterOptions } from "./enter-ahead.ts";
import { foregroundRequest } from "../enter-messages.ts";

const HOSTNAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

const ADJECTIVES = ["brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "swift", "witty", "bold", "gentle"];
const ANIMALS = ["badger", "mole", "rabbit", "fox", "vole", "otter", "wombat", "marmot", "gopher", "shrew", "stoat", "hare"];

/** `entered`: the options of the enter step started ahead were written (CreateRequest.enterFifo). */
export type Created = { id: string; name: string; enter: EnterTarget & { cwd: string }; entered?: true };

function randomName(ctx: DaemonContext): string {
  for (;;) {
    const pick = <T>(a: T[]) => a[Math.floor(Math.random() * a.length)]!;
    const name = `${pick(ADJECTIVES)}_${pick(ANIMALS)}${Math.floor(Math.random() * 100)}`;
    if (!ctx.store.nameTaken(name)) return name;
  }
}

/** The request as the sandbox's spec keeps it: the enter FIFO was for this create's CLI only. */
function withoutEnterFifo(req: CreateRequest): CreateRequest {
  if (!req.enterFifo) return req;
  const { enterFifo: _, ...rest } = req;
  return rest;
}

/** A name for a create given none: the one the spare set as its hostname ahead when it is free. */
function unnamed(ctx: DaemonContext): string {
  const ahead = claimSpareHostname();
  return ahead && !ctx.store.nameTaken(ahead) ? ahead : randomName(ctx);
}

/** The spares' files, beside the sandboxes' directories (one filesystem: a create renames them into its own). */
const spareDir = (ctx: DaemonContext) => sandboxDir(ctx.paths, ".spare");

/**
 * What each spare makes ready for the next plain sandbox (src/namespaces/pins.ts
 * SpareAhead): a free random name as its hostname, and empty /etc files,
 * named for this spare in one directory that stays (an rmdir costs a
 * create ~0.15 ms on ext4). Null, and a spare with its namespaces only,
 * when the files cannot be made.
 */
export function spareAhead(ctx: DaemonContext): SpareAhead | null {
  const dir = spareDir(ctx);
  const tag = randomBytes(6).toString("hex");
  const files = { hosts: `${dir}/${tag}.hosts`, resolv: `${dir}/${tag}.resolv.conf`, hostname: `${dir}/${tag}.hostname` };
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const f of Object.values(files)) writeInPlace(f, "");
    return { hostname: randomName(ctx), files: Object.values(files), binds: etcBinds(files) };
  } catch (e) {
    log.debug(`the spare's /etc files: ${messageOf(e)}`);
    for (const f of Object.values(files)) rmSync(f, { force: true });
    return null;
  }
}

/** At the daemon's start, before any spare: the files of spares a daemon left (their namespaces ended with it). */
export function removeLeftoverSpares(ctx: DaemonContext): void {
  rmSync(spareDir(ctx), { recursive: true, force: true });
}

let fallbackLogged = false;
/** Rootful: the default bridge network. Rootless: src/machine/rootless-default.ts (what is installed, containers.conf, merit). */
export function defaultNetwork(ctx: DaemonContext): string {
  if (!ctx.paths.rootless) return "bridge";
  const chosen = rootlessDefault(helperConf(), (name) => findHelper(name));
  if (chosen.fallback && !fallbackLogged) {
    fallbackLogged = true;
    log.warn(chosen.fallback);
  }
  return chosen.mode;
}

/** `reuse`: restart hook of `start`, an exited row made again in place (same id, name, logs). */
export async function createSandbox(ctx: DaemonContext, releases: SandboxReleases, req: CreateRequest, reuse?: Sandbox): Promise<Created> {
  const tStart = performance.now();
  const name = reuse?.name ?? req.name ?? unnamed(ctx);
  const hostname = req.hostname ?? name.slice(0, 63);
  if (!HOSTNAME.test(hostname))
    throw new BurrowError(`invalid hostname ${quote(hostname)}: use at most 64 letters, digits, _ . or -, starting with a letter or digit`, {
      kind: "bad-input",
    });
  checkRestartRequest(req); // restart hook: --restart parsing and its refusals
  // --user: only ids this user namespace maps (run's check; exec's is in the enter child).
  if (req.user) checkMapped(req.user, parseIdMap(readFileSync("/proc/self/uid_map", "utf8")), parseIdMap(readFileSync("/proc/self/gid_map", "utf8")));
  // Resolved once: `start` and `restart` keep the set the sandbox was made with.
  const caps =
    reuse?.spec.caps ??
    resolveCapabilities(
      { capAdd: req.capAdd ?? [], capDrop: req.capDrop ?? [], privileged: req.privileged ?? false },
      helperConf().defaultCapabilities ?? PODMAN_DEFAULT_CAPABILITIES,
      knownCapabilities(),
    );
  const networkRaw = req.network ?? defaultNetwork(ctx);
  const mode = ctx.backends.parse(networkRaw);
  const backend = ctx.backends.forMode(mode);
  const plan = await backend.plan(mode, { paths: ctx.paths, find: (ref) => ctx.store.find(ref) });
  // podman v3: these only mean something on bridge networks.
  for (const [flag, given] of [
    ["--ip", req.ip],
    ["--mac-address", req.mac],
    ["--network-alias", req.aliases.length ? req.aliases.join(",") : undefined],
  ] as const) {
    if (given !== undefined && !backend.bridge)
      throw new BurrowError(`${flag} ${given} can only be used with bridge networks (--network bridge or a network name), not --network ${mode.kind}`, {
        kind: "bad-input",
      });
  }
  // Before anything is made: a plugin would catch these only half-way, in its own words.
  await backend.networks?.checkCreate(mode, req);
  // Egress rules the command could escape, or this machine cannot enforce: one line, nothing made.
  checkEgressRequest(req, caps, mode, backend.splicesLoopback?.(mode) ?? false, plan.netOf);
  if (req.accelerate) {
    refuseAcceleration(mode, networkRaw);
    checkAccelerationSupport();
  }
  const portChoice = backend.ports(mode, { rootless: ctx.paths.rootless, plan });
  const portSpecs = ctx.ports.parse(req.ports, portChoice);
  // A sandbox of that name may be in its background release (`run --rm`
  // just returned): its name is free once that is done.
  const releasing = ctx.store.all().find((o) => o.name === name && releases.isExiting(o.id));
  if (releasing) await releases.settled(releasing.id);
  // A create rolled back on a full disk may still hold the name (src/daemon/create-retry.ts).
  if (!reuse) await freeName(retryDeps(ctx, releases), name);
  if (!reuse && ctx.store.nameTaken(name)) throw nameInUse(name);

  const id = reuse?.id ?? randomBytes(32).toString("hex");
  const s: Sandbox = {
    id,
    name,
    createdAt: reuse?.createdAt ?? now(),
    status: "created",
    pid: null,
    pidStart: null,
    exitCode: null,
    startedAt: null,
    finishedAt: null,
    bootId: ctx.bootId,
    session: ctx.session.id,
    spec: { ...withoutEnterFifo(req), name, hostname, network: networkRaw, caps },
    // partial until the last step: a new row still partial when no create works on it is
    // rolled back (src/daemon/create-retry.ts). Not a restarted one: that row is the user's.
    runtime: {
      pins: null,
      ino: null,
      network: mode.kind,
      netOf: plan.netOf?.id,
      restart: reuse?.runtime.restart,
      // `start` of an exited row keeps appending where its log is (a row of 0.2.0: the runtime dir).
      // A new row's log is podman's k8s-file (src/sandbox-log.ts); an older row keeps its plain file.
      log: reuse ? reuse.runtime.log : `${sandboxStateDir(ctx.paths, id)}/${LOG_FILE}`,
      ...(reuse ? {} : { partial: true }),
    },
  };
  const portDriver = portSpecs.length && "driver" in portChoice ? portChoice.driver : undefined;
  s.runtime.portDriver = portDriver;
  if (portDriver && "driver" in portChoice && portChoice.keepClientAddress === false) s.runtime.keepClientAddress = false;

  return ctx.locks.run(id, async () => {
    const undo = new Rollback();
    try {
      // The row first: it reserves the name against a concurrent create.
      ctx.creating.add(id);
      const dir = sandboxDir(ctx.paths, id);
      if (reuse) {
        // restart hook: `start` reuses the exited row; a failure leaves it exited as it was.
        if (ctx.store.find(id).status !== "exited") throw new BurrowError(`sandbox ${name} is not exited any more`, { kind: "running" });
        ctx.store.update(s);
        ctx.store.updateSpec(s);
        undo.push("state row", () => {
          ctx.store.update(reuse);
          ctx.store.updateSpec(reuse);
        });
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        if (s.runtime.log) mkdirSync(sandboxStateDir(ctx.paths, id), { recursive: true, mode: 0o700 });
      } else {
        ctx.store.insert(s);
        undo.push("state row", () => ctx.store.delete(id));
        ctx.bookkeeping.requests.record(req.requestId, id, name);
        undo.push("request id", () => ctx.bookkeeping.requests.forget(id));
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        undo.push("sandbox dir", () => rmSync(dir, { recursive: true, force: true }));
        // The log's directory, in the state dir (a logout removes the runtime dir).
        ensurePrivateDir(`${ctx.paths.stateDir}/sandboxes`);
        undo.push("sandbox state dir", () => rmSync(sandboxStateDir(ctx.paths, id), { recursive: true, force: true }));
        mkdirSync(sandboxStateDir(ctx.paths, id), { mode: 0o700 });
      }
      const files = etcFiles(dir);
      const sharedDir = plan.netOf && sandboxDir(ctx.paths, plan.netOf.id);
      const initial = etcContent({ policy: backend.etc, hostname, name, dns: resolvConfServers(req), sharedDir });
      // Where the namespaces are made: before the files are bound, or once a spare's own bound ones are renamed here.
      const writeEtc = () => {
        writeInPlace(files.hosts, initial.hosts);
        writeInPlace(files.resolv, initial.resolv);
        writeInPlace(files.hostname, `${hostname}\n`);
      };

      // A network made ahead for this mode (slirp4netns already running in
      // its own netns, src/net/backend.ts WarmNetwork): joined instead of a
      // new netns, and adopted by the backend's setup below.
      const warm = plan.newNet && !plan.joinNet ? await backend.warm?.take(mode) : null;
      if (warm) undo.push("network made ahead", () => warm.release());
      const t0 = performance.now();
      // Before any process can be in its namespaces: the release then looks
      // only at the pids handed out since (src/sys/processes.ts pidsSince).
      s.runtime.pidMark = pidCounter() ?? undefined;
      const { pins, ino } = await createPinned(
        {
          hostname,
          newNet: plan.newNet && !warm,
          joinNet: warm ? warm.netns : plan.joinNet,
          binds: etcBinds(files),
          hide: hiddenFromSandboxes(ctx.paths),
          ...(warm ? {} : { netSysctls: plan.netSysctls }),
        },
        pinDir(ctx.paths, id),
        writeEtc,
      );
      s.runtime.pins = pins;
      s.runtime.ino = ino;
      // The undo before the write: a write that fails (a full disk) must still unpin.
      undo.push("pins", () => removePins(pins, pinDir(ctx.paths, id)));
      undo.push("processes", () => killAll(ino.mnt, pins.mnt));
      // Saved at once: a daemon killed mid-create leaves a row the next one can release.
      ctx.store.update(s);

      // Egress sockets, asked for now: the connector makes them while the network is set up.
      const earlyEgress = prepareEgressSockets(s, undo);
      const t1 = performance.now();
      let egressNet: EgressNetwork | undefined;
      if (portDriver) {
        s.runtime.ports = await ctx.ports.prepare(portDriver, portSpecs);
        // The undo as soon as there is something to undo: a create that fails
        // between here and the ports' setup (the network's ADD refusing an
        // --ip, a full disk) gives back what prepare() holds, portmap's
        // random host ports, at once instead of after their 30 s expiry.
        undo.push("port picks", () => ctx.ports.teardown(s));
        // Recorded before the network: a rollback after a crash during the ADD needs them for portmap's DEL.
        ctx.store.update(s);
      }
      if (backend.setup) {
        const net = await backend.setup(mode, { ...setupContext(ctx, s), ...(warm ? { warm } : {}) });
        s.runtime.backend = net.record;
        s.runtime.address = net.address;
        s.runtime.ipv6 = net.ipv6 || undefined;
        s.runtime.address6 = net.address6;
        undo.push("network", () => backend.teardown?.(net.record, setupContext(ctx, s)));
        ctx.store.update(s);
        const content = etcContent({ policy: backend.etc, hostname, name, dns: resolvConfServers(req), net });
        writeInPlace(files.hosts, content.hosts);
        writeInPlace(files.resolv, content.resolv);
        egressNet = { ...net, networks: backend.inspectNetworks?.(net.record) };
      }
      const t2 = performance.now();
      if (portSpecs.length) {
        s.runtime.ports = await ctx.ports.setup(s, s.runtime.ports ?? portSpecs);
        // Again, so that after the setup the ports go before the network as
        // they always did (every driver's teardown is idempotent: the
        // earlier undo then finds nothing left).
        undo.push("ports", () => ctx.ports.teardown(s));
      }
      const t3 = performance.now();
      // Egress rules: loaded and served before the command can send anything (run -d spawns it below, run after create returns).
      if (earlyEgress) await startEgress(ctx, s, egressNet, undo, earlyEgress);
      ctx.store.update(s);
      log.debug(
        `create ${name}: before ns ${(t0 - tStart).toFixed(1)} ms, namespaces ${(t1 - t0).toFixed(1)} ms, network ${(t2 - t1).toFixed(1)} ms, ports ${(t3 - t2).toFixed(1)} ms${req.egress ? `, egress ${(performance.now() - t3).toFixed(1)} ms` : ""}`,
      );
      ctx.store.event("create", s, { network: networkRaw });
      if (req.detach) {
        // As podman: a command that cannot be run fails `run -d` at once
        // with 127 or 126, not an id whose sandbox has already exited. The
        // create is then rolled back like any other failed one.
        const failure = await spawnDetached(ctx, releases, s, { reportStartFailure: true });
        if (failure) throw new BurrowError(failure.message, { kind: "bad-input", exitCode: failure.exitCode });
      }
      // Complete (and for -d, its command runs): from here a retry gets this answer.
      delete s.runtime.partial;
      ctx.store.update(s);
      undo.commit();
      const enter = enterTarget(ctx, s);
      // A foreground run's enter step, started ahead, gets its options from here: the command starts while this reply travels.
      const entered =
        req.enterFifo && req.requestId && !req.detach && !req.tty && !req.accelerate && !reuse
          ? sendEnterOptions(enterFifo(ctx.paths, req.requestId), foregroundRequest(enter, req))
          : false;
      return { id, name, enter, ...(entered ? { entered } : {}) };
    } catch (e) {
      // Out of space: the reserve makes room for the rollback's own writes.
      if (isDiskFull(e)) ctx.bookkeeping.reserve?.release();
      for (const err of await undo.unwind()) log.warn(`rollback of ${sandboxLabel(s)}: ${err.message}`);
      // ns:PATH passed its check (src/net/ns/backend.ts) but the join failed
      // (the path changed meanwhile): still one line, not an internal error.
      if (mode.kind === "ns" && !(e instanceof BurrowError) && messageOf(e).includes(`(${mode.path})`))
        throw new BurrowError(`cannot join network namespace path ${quote(mode.path)}: ${messageOf(e)}`, { kind: "bad-input", cause: e });
      throw e;
    } finally {
      ctx.creating.delete(id);
    }
  });
}

/**
 * `run -d`: the daemon starts the command itself (through `__enter`) and
 * waits for it. Also the restart hook's respawn (src/daemon/restart.ts):
 * same namespaces, same log.
 */
export function spawnDetached(ctx: DaemonContext, releases: SandboxReleases, s: Sandbox): void;
/**
 * With `reportStartFailure`: resolves once the command was exec'd (null), or
 * with the enter child's own error and status when it could not be (not
 * found: 127, not executable: 126, cannot enter: 125). The enter child writes
 * its errors to an extra pipe (EnterTarget.errorFd) that it marks
 * close-on-exec: EOF with nothing read is a successful exec. A failed start
 * is not recorded as an exit: the caller rolls the create back.
 */
export function spawnDetached(
  ctx: DaemonContext,
  releases: SandboxReleases,
  s: Sandbox,
  opts: { reportStartFailure: true },
): Promise<{ message: string; exitCode: number } | null>;
export function spawnDetached(
  ctx: DaemonContext,
  releases: SandboxReleases,
  s: Sandbox,
  opts: { reportStartFailure?: boolean } = {},
): undefined | Promise<{ message: string; exitCode: number } | null> {
  // Never through a symbolic link: the log is opened by name in the state dir.
  // -t: the command's stdio is a pty whose output the daemon logs; without: pipes it copies.
  const output = detachedOutput(sandboxLog(ctx.paths, s), s.spec.tty === true);
  try {
    // No session namespaces to join: this child already is in the
    // daemon's. Naming them by /proc/<daemon pid> failed (exit 125) when
    // the daemon was killed before the child got to them.
    // The pins go as inherited fds (src/daemon/ownership.ts): a logout may
    // remove the files before the child has joined.
    const pinned = pinsAsFds({ ...enterTarget(ctx, s), session: {}, tty: s.spec.tty, workdir: s.spec.workdir, user: s.spec.user });
    // The error pipe goes after the pins: fd 3 + their number in the child.
    const errorFd = opts.reportStartFailure ? 3 + pinned.fds.length : undefined;
    let proc: Bun.Subprocess;
    try {
      proc = spawnEnterStep({ ...pinned.target, ...(errorFd ? { errorFd } : {}) }, s.spec.argv, {
        env: s.spec.env,
        stdio: [...output.stdio, ...pinned.fds, ...(errorFd ? ["pipe" as const] : [])],
        detached: true,
      });
    } finally {
      pinned.close();
    }
    output.spawned();
    if (output.pipes) s.runtime.logPipes = output.pipes;
    else delete s.runtime.logPipes;
    ctx.children.set(s.id, proc);
    markStarted(ctx, s, proc.pid);
    const started = errorFd ? startOutcome(proc, proc.stdio[errorFd] as unknown as number) : Promise.resolve(null);
    proc.exited.then(async (code) => {
      ctx.children.delete(s.id);
      // Never ran: the create that asked rolls back; this is no exit to record.
      if (await started) return;
      const exit = proc.signalCode ? 128 + (signalNumber(String(proc.signalCode)) ?? 0) : code;
      // What the command wrote last is in the log before the sandbox counts
      // as exited (`logs -f` and `wait` then see all of it). Bounded: a -t
      // command's pty may be held by a process it left behind until the
      // release kills it.
      await Promise.race([output.drain(), Bun.sleep(OUTPUT_DRAIN_MS)]);
      releases.exited(s.id, exit).catch((e) => log.warn(`cleanup of ${sandboxLabel(s)}: ${messageOf(e)}`));
    });
    return errorFd ? started : undefined;
  } catch (e) {
    output.abort();
    throw e;
  }
}

/** The most an exit waits for the last output to reach the log (a full 1 MiB pipe of `yes` takes ~0.1 s unpaced). */
const OUTPUT_DRAIN_MS = 5000;

/** What the enter child wrote to its error pipe before it closed (exec) or exited (failure). */
async function startOutcome(proc: Bun.Subprocess, fd: number): Promise<{ message: string; exitCode: number } | null> {
  let text = "";
  try {
    text = await Bun.file(fd).text();
  } catch {
  } finally {
    try {
      closeSync(fd);
    } catch {}
  }
  const message = text.trim().replace(/^Error: /, "");
  if (!message) return null;
  const code = await proc.exited;
  return { message: message.split("\n")[0]!, exitCode: code || EXIT.burrow };
}

export function markStarted(ctx: DaemonContext, s: Sandbox, pid: number): void {
  s.status = "running";
  delete s.runtime.stoppedByUser;
  s.pid = pid;
  s.pidStart = startTimeOf(pid);
  s.startedAt = now();
  ctx.store.update(s);
  ctx.store.event("start", s, { pid });
}
