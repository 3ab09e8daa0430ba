// Daemon main thread: creates a sandbox's net/mnt/uts namespaces on a Worker
// and pins them with bind mounts of /proc/self/task/<tid>/ns/* (the pins
// live in the session mount namespace: the holder's when rootless).
import * as v from "valibot";
import { mkdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { Rollback, messageOf } from "../errors.ts";
import { isSysError } from "../sys/libc.ts";
import { bind, umount, umountIfMounted } from "../sys/mount.ts";
import { close, openRO } from "../sys/ns.ts";
import { parseMessage } from "../messages.ts";
import { CreateNsReply, type CreateNsRequest } from "./messages.ts";
import { workerUrl } from "../workers.ts";
import { log } from "../log.ts";

export type { CreateNsRequest };

export interface Pins {
  net: string;
  uts: string;
  mnt: string;
}

const createWorkerUrl = workerUrl("namespaces/create-worker.ts");

function spawnWorker(): Worker {
  const w = new Worker(createWorkerUrl);
  // A warm worker must not keep the daemon alive on its own.
  w.unref();
  return w;
}

/**
 * What a spare makes ready beyond its namespaces, for the next plain
 * sandbox (the daemon says what: prewarm's `ahead`): its hostname, which a
 * create given no name takes as its name (`claimSpareHostname`), and its
 * /etc files, empty, in a directory of their own and bound over /etc; the
 * create that takes the spare renames them into the sandbox's directory
 * (the binds follow the inodes) and writes them. Such a create sends the
 * spare nothing at all unless it joins a netns or wants another hostname.
 */
export interface SpareAhead {
  hostname: string;
  /** Every file made for it: removed when the spare is not used. */
  files: string[];
  /** [one of files, /etc target] */
  binds: Array<[string, string]>;
}

/**
 * One spare worker, started ahead of need and already inside a plain
 * sandbox's new net/mnt/uts namespaces (made on `cpu`): a sandbox with a new
 * network takes it and pays only for the hostname and the /etc binds, or
 * (ahead) for nothing but its pins.
 * Measured: the namespace step went from 1.4-4 ms to ~0.5 ms.
 * `ready`: once it is prepared, the thread whose namespaces to pin and
 * (ahead) what its hides covered; null when it failed. `detach`: the
 * directories it was told to hide.
 */
let spare: {
  worker: Worker;
  cpu: number | undefined;
  ready: Promise<Prepared | null>;
  ahead: SpareAhead | null;
  detach: string[];
  claimed: boolean;
} | null = null;

type Prepared = { tid: number; hidden?: Array<[number, number]> };

/** A worker done with a sandbox, to be made the next spare (one at most: others exit). */
let used: Worker | null = null;

/** What the spare unmounts below in its new mount namespace: the sandboxes' hidden directories (prewarm's first caller says). */
let spareDetach: string[] = [];

/** Makes each spare's SpareAhead (prewarm's first caller says); null: that spare prepares its namespaces only. */
let makeAhead: () => SpareAhead | null = () => null;

/**
 * Starts the spare. The daemon's first call says `detach`, the directories
 * each sandbox hides (CreateNsRequest.hide), and `ahead`, what each spare
 * makes ready beyond its namespaces.
 */
export function prewarm(detach?: string[], ahead?: () => SpareAhead | null): void {
  if (detach) spareDetach = detach;
  if (ahead) makeAhead = ahead;
  if (spare) return;
  const reuse = used;
  used = null;
  const worker = reuse ?? spawnWorker();
  const cpu = goodCpu;
  const made = makeAhead();
  const ready = new Promise<Prepared | null>((resolve) => {
    worker.onmessage = (ev) => {
      const ok = v.is(CreateNsReply, ev.data) && ev.data.ok;
      if (!ok)
        log.debug(
          `the spare namespace worker failed to prepare${reuse ? " (reused)" : ""}: ${v.is(CreateNsReply, ev.data) && !ev.data.ok ? ev.data.error : "no reply"}`,
        );
      resolve(v.is(CreateNsReply, ev.data) && ev.data.ok ? { tid: ev.data.tid, hidden: ev.data.hidden } : null);
    };
    worker.onerror = () => resolve(null);
  });
  worker.postMessage({
    prepare: true,
    cpu,
    detach: spareDetach,
    ...(reuse ? { reset: true } : {}),
    ...(made ? { ahead: { hostname: made.hostname, binds: made.binds } } : {}),
  });
  spare = { worker, cpu, ready, ahead: made, detach: spareDetach, claimed: false };
}

/**
 * How long after a create took the spare the next one is prepared. Its
 * Worker's unshare and mounts and the main thread's part (~0.15 ms) took
 * CPU the run that was just answered needed on 2 cores (the CLI loading
 * its foreground module, the enter step): started on the next turn of the
 * event loop, the create's answer reached the CLI 0.86 ms after the
 * daemon had it, 0.56 ms with this wait (marks, 30 runs). A create that
 * comes meanwhile starts it at once and waits for it (prewarmPending):
 * ~0.5 ms, not a fresh Worker's ~5.
 */
const PREPARE_AFTER_CREATE_MS = 5;

/** The next spare's timer (prewarmSoon), while it waits. */
let pending: ReturnType<typeof setTimeout> | null = null;

/** The next spare, PREPARE_AFTER_CREATE_MS from now. */
function prewarmSoon(): void {
  if (spare || pending) return;
  pending = setTimeout(() => {
    pending = null;
    prewarm();
  }, PREPARE_AFTER_CREATE_MS);
  // A spare to come keeps no daemon from its idle exit.
  pending.unref();
}

/** A create found the next spare waiting for its timer: made now. */
function prewarmPending(): void {
  if (!pending) return;
  clearTimeout(pending);
  pending = null;
  prewarm();
}

/**
 * The hostname the spare set ahead, for the first create that asks (a
 * create given no name takes it as its name): later ones get undefined, so
 * two creates at once never pick the same name. A create that then does not
 * take this spare only costs the next one a hostname message.
 */
export function claimSpareHostname(): string | undefined {
  if (!spare?.ahead || spare.claimed) return undefined;
  spare.claimed = true;
  return spare.ahead.hostname;
}

/**
 * The daemon is ending: no create takes the spare any more, and no other is
 * made (its namespaces end with the daemon's threads; the caller removes
 * the directory its files are in: SandboxService.dropSpare).
 */
export function endSpare(): void {
  if (pending) clearTimeout(pending);
  pending = null;
  spare = null;
  makeAhead = () => null;
}

/** A spare's files that no sandbox will use (renamed away ones are gone already). */
function discardAhead(ahead: SpareAhead | null): void {
  for (const f of ahead?.files ?? []) {
    try {
      unlinkSync(f);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") log.debug(`removing the spare's file ${f}: ${messageOf(e)}`);
    }
  }
}

/** Keeps `worker` for the next spare, or ends it when one is kept already. */
function release(worker: Worker): void {
  if (used || spare) worker.postMessage({ done: true });
  else used = worker;
}

/**
 * What a create does with the spare: takes it (a sandbox with a new net
 * namespace, or one that joins a netns made for it ahead: the spare's
 * mount and uts namespaces are new either way, its netns is left for the
 * joined one; on the spare's CPU or any), drops it (a plain
 * sandbox on another CPU: the first create found the CPU that works while
 * this spare was already made on another, and no later create could use
 * it), or leaves it for the next one. Pure.
 */
export function spareFit(
  req: Pick<CreateNsRequest, "newNet" | "joinNet" | "netOnly" | "cpu">,
  spareCpu: number | undefined,
  netOnlyFromSpare = false,
): "take" | "drop" | "leave" {
  // A bare netns only when made ahead from the spare (createPinnedNetns with fromSpare); host (no new netns, none to join) keeps the daemon's.
  if ((req.netOnly && !netOnlyFromSpare) || (!req.newNet && !req.joinNet) || (req.newNet && req.joinNet)) return "leave";
  return req.cpu === undefined || req.cpu === spareCpu ? "take" : "drop";
}

/**
 * The prepared spare when it fits the request, else a fresh worker.
 * `tookSpare`: the caller starts the next spare when it is done with this
 * one (also when it was dropped: a spare that stayed, made for the wrong
 * CPU, left every later create to start a Worker of its own, about 5 ms
 * each, on about half of daemon starts on 2 cores).
 */
async function workerFor(
  req: CreateNsRequest,
  netOnlyFromSpare = false,
): Promise<{ worker: Worker; prepared: boolean; tookSpare: boolean; made?: Prepared; ahead?: SpareAhead | null; detach?: string[] }> {
  prewarmPending();
  const s = spare;
  const fit = s ? spareFit(req, s.cpu, netOnlyFromSpare) : "leave";
  if (!s || fit === "leave") return { worker: spawnWorker(), prepared: false, tookSpare: false };
  spare = null;
  const made = fit === "take" ? await s.ready : null;
  if (made) return { worker: s.worker, prepared: true, tookSpare: true, made, ahead: s.ahead, detach: s.detach };
  // Not ready: it failed to prepare (or to go back, reused), and is not tried again.
  s.worker.postMessage({ done: true });
  discardAhead(s.ahead);
  return { worker: spawnWorker(), prepared: false, tookSpare: true };
}

/**
 * The spare's files, made ahead, become the request's: when it bound
 * exactly the targets the request binds (the host's /etc did not change
 * meanwhile), hid the directories the request hides and they are still the
 * ones it hid (a logout since made new ones at those paths, in view of its
 * mount namespace), and its files are still there to be renamed to the
 * request's paths (a logout removes them). False: the create ends that
 * spare and a fresh worker does the whole step.
 */
function adoptAhead(req: CreateNsRequest, ahead: SpareAhead, detach: readonly string[], hidden: ReadonlyArray<readonly [number, number]> | undefined): boolean {
  if (req.binds.length !== ahead.binds.length || !req.binds.every(([, dst], i) => ahead.binds[i]![1] === dst)) return false;
  if (!hidden || req.hide.length !== detach.length || hidden.length !== detach.length) return false;
  try {
    for (const [i, dir] of req.hide.entries()) {
      const st = statSync(dir);
      if (dir !== detach[i] || st.dev !== hidden[i]![0] || st.ino !== hidden[i]![1]) return false;
    }
    // A later attempt on another worker binds them from there.
    for (const [i, [src]] of req.binds.entries()) renameSync(ahead.binds[i]![0], src);
  } catch {
    return false;
  }
  return true;
}

// Why the CPU matters. The kernel refuses (EINVAL) to bind-mount a mount
// namespace file unless that namespace is newer than the caller's own, to
// prevent reference loops (fs/namespace.c mnt_ns_loop). Since Linux 6.18
// "newer" compares namespace ids handed out from per-CPU batches, so a mount
// namespace made on one CPU can look older than the holder's, made earlier
// on another (measured: about half of first sandboxes failed on 2 cores).
// Ids within one CPU's batch only grow, so the CPU the holder's namespace
// came from always works: try each CPU in turn and remember the one that did.
let goodCpu: number | undefined;
const cpus = navigator.hardwareConcurrency || 1;

function isLoopRefusal(e: unknown): boolean {
  return isSysError(e, "EINVAL") && e.message.includes("ns/mnt");
}

/**
 * Makes the namespaces and pins them under `pinDir`. `writeEtc` writes the
 * bind sources (req.binds) in place: called before they are bound, or,
 * where a spare bound its own files ahead, once those are renamed to the
 * request's paths. On any failure, every pin made so far is removed before
 * the error is thrown.
 */
export async function createPinned(
  req: CreateNsRequest,
  pinDir: string,
  writeEtc: () => void = () => {},
): Promise<{ pins: Pins; ino: { net: number; uts: number; mnt: number } }> {
  const first = goodCpu;
  const spareTaken = { value: false };
  try {
    for (let attempt = 0; ; attempt++) {
      const cpu = first === undefined && attempt === 0 ? undefined : ((first ?? 0) + attempt) % cpus;
      try {
        const made = await createPinnedOnce({ ...req, cpu }, pinDir, "net", spareTaken, false, writeEtc);
        if (cpu !== undefined) goodCpu = cpu;
        return made;
      } catch (e) {
        if (!isLoopRefusal(e) || attempt > cpus) throw e;
        goodCpu = undefined;
      }
    }
  } finally {
    // The next spare, once every attempt is done: made on the CPU the last
    // one found (a spare started between attempts was made for none, and
    // the next create had to drop it).
    if (spareTaken.value || used) prewarmSoon();
  }
}

/**
 * A bare network namespace with loopback up (and `netSysctls` written),
 * pinned at `path`; returns its inode. `fromSpare` (a network made ahead,
 * src/net/slirp4netns/warm.ts): the prepared spare's netns, so no Worker is
 * started for it (~5 ms, 1-3 of them blocking this thread); the spare gives
 * up its mount and uts namespaces and is prepared again at once. Without a
 * spare, or without `fromSpare` (the rootless CNI namespace), a Worker of
 * its own.
 */
export async function createPinnedNetns(path: string, opts: { netSysctls?: Array<[string, string]>; fromSpare?: boolean } = {}): Promise<number> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  const spareTaken = { value: false };
  const req: CreateNsRequest = {
    hostname: "",
    newNet: true,
    binds: [],
    hide: [],
    netOnly: true,
    ...(opts.netSysctls?.length ? { netSysctls: opts.netSysctls } : {}),
  };
  try {
    const { ino } = await createPinnedOnce(req, dir, path.slice(dir.length + 1), spareTaken, opts.fromSpare ?? false);
    return ino.net;
  } finally {
    if (opts.fromSpare && (spareTaken.value || used)) prewarmSoon();
  }
}

async function createPinnedOnce(
  req: CreateNsRequest,
  pinDir: string,
  netName = "net",
  spareTaken = { value: false },
  netOnlyFromSpare = false,
  writeEtc: () => void = () => {},
): Promise<{ pins: Pins; ino: { net: number; uts: number; mnt: number } }> {
  const taken = await workerFor(req, netOnlyFromSpare);
  const { tookSpare, made, ahead, detach } = taken;
  let { worker, prepared } = taken;
  const undo = new Rollback();
  // Opened here, in the daemon's mount namespace, for a spare to join (CreateNsRequest.joinNetFd); closed once it has.
  let joinNetFd: number | undefined;
  // Starting a Worker blocks this thread for a moment (~1-3 ms): the next
  // spare (tookSpare) is started once these namespaces are pinned and every
  // attempt is done, on a later turn of the event loop (createPinned's
  // finally), so that a create with nothing left to wait for has sent its
  // reply by then. It used to be a 1 ms timer from when the spare was taken,
  // which could fire in the middle of the create it was meant to follow.
  try {
    const adopt = prepared && ahead && !req.netOnly && adoptAhead(req, ahead, detach ?? [], made?.hidden) ? ahead : null;
    // What was not renamed (a spare not adopted; a file the host's /etc has no target for).
    if (ahead && (!adopt || adopt.files.length !== adopt.binds.length)) discardAhead(ahead);
    if (prepared && ahead && !req.netOnly && !adopt) {
      // Its hides may cover the request's files (a logout removed the runtime dir and made it again): a fresh worker instead, once.
      worker.postMessage({ done: true });
      worker = spawnWorker();
      prepared = false;
    }
    writeEtc();
    // An adopted spare did the binds and hides; it sets a hostname only when the create wants another.
    const ask: CreateNsRequest = adopt ? { ...req, hostname: req.hostname === adopt.hostname ? "" : req.hostname } : req;
    const reply: CreateNsReply =
      adopt && made && !ask.hostname && !req.joinNet && !req.netSysctls?.length
        ? { ok: true, tid: made.tid }
        : await new Promise<CreateNsReply>((resolve, reject) => {
            worker.onmessage = (ev) => {
              try {
                resolve(parseMessage(CreateNsReply, ev.data, "the namespace worker's reply"));
              } catch (e) {
                reject(e);
              }
            };
            worker.onerror = (ev) => reject(new Error(`sandbox worker failed: ${ev.message}`));
            if (prepared && req.joinNet) joinNetFd = openRO(req.joinNet);
            worker.postMessage({ ...ask, usePrepared: prepared, ...(joinNetFd !== undefined ? { joinNetFd } : {}) });
          });
    if (!reply.ok) throw new Error(reply.error);
    mkdirSync(pinDir, { recursive: true, mode: 0o700 });
    if (!req.netOnly) undo.push("pin dir", () => rmSync(pinDir, { recursive: true, force: true }));
    const pins: Pins = { net: `${pinDir}/${netName}`, uts: `${pinDir}/uts`, mnt: `${pinDir}/mnt` };
    for (const kind of req.netOnly ? (["net"] as const) : (["net", "uts", "mnt"] as const)) {
      writeFileSync(pins[kind], "");
      bind(`/proc/self/task/${reply.tid}/ns/${kind}`, pins[kind]);
      undo.push(`${kind} pin`, () => umount(pins[kind]));
    }
    const ino = req.netOnly
      ? { net: statSync(pins.net).ino, uts: 0, mnt: 0 }
      : { net: statSync(pins.net).ino, uts: statSync(pins.uts).ino, mnt: statSync(pins.mnt).ino };
    undo.commit();
    return { pins, ino };
  } catch (e) {
    const errs = await undo.unwind();
    if (errs.length) throw new Error(`${messageOf(e)} (and while rolling back: ${errs.map(messageOf).join("; ")})`);
    throw e;
  } finally {
    if (joinNetFd !== undefined) close(joinNetFd);
    // Its namespaces are pinned (or given up): it can make the next ones. Not
    // a bare network namespace's worker: no spare follows it at once, and
    // meanwhile its thread would keep that namespace alive past its teardown
    // (the rootless namespace of bridge networks).
    // A spare that gave its netns (createPinnedNetns with fromSpare) goes back and is made again at once.
    if (req.netOnly && !prepared) worker.postMessage({ done: true });
    else release(worker);
    if (tookSpare) spareTaken.value = true;
  }
}

/** Removes the pins; returns every error instead of stopping at the first. */
export function removePins(pins: Pins, pinDir: string): Error[] {
  const errors: Error[] = [];
  for (const kind of ["net", "uts", "mnt"] as const) {
    try {
      umountIfMounted(pins[kind]);
    } catch (e) {
      errors.push(e as Error);
    }
  }
  try {
    rmSync(pinDir, { recursive: true, force: true });
  } catch (e) {
    errors.push(e as Error);
  }
  return errors;
}

/** True when the pin still holds the namespace it was made for. */
export function pinHolds(path: string, ino: number): boolean {
  try {
    return statSync(path).ino === ino;
  } catch {
    return false;
  }
}
