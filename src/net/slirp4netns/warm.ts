// slirp4netns started ahead (issue 17, docs/decisions.md "slirp4netns
// started ahead"): after a sandbox on slirp4netns is made or released, the
// daemon makes the next one's network in the background, a pinned netns
// (loopback up) with slirp4netns already attached and configured. The next
// create with the same options joins that netns and adopts the process,
// instead of waiting ~5 ms for slirp4netns to start. One at a time: it is
// made for the options the last sandbox used, and one made for other
// options is ended when a create asks for different ones.
//
// A netns made ahead is nobody's until a create takes it: no sandbox's
// processes ever ran in it, and a create joins it at most once (taken out
// of the pool before the join). Its slirp4netns is in the helper ledger as
// "warm:slirp4netns" (the sweep spares it while this daemon holds it: a
// daemon killed meanwhile leaves a row the next one's sweep kills), and its
// pin lives under RUNTIME_DIR/pins/warm-*, removed at the next daemon's
// start (clearLeftovers).
//
// Daemon main thread, session namespaces.
import { randomBytes } from "node:crypto";
import { readdirSync, renameSync } from "node:fs";
import type { Paths } from "../../paths.ts";
import { pinsRoot } from "../../paths.ts";
import { type HelperRow, type HelperTrack, warmOwner } from "../../state/helpers.ts";
import type { SetupContext, WarmNetwork } from "../backend.ts";
import { createPinnedNetns, pinHolds, removePins } from "../../namespaces/pins.ts";
import { isRunning } from "../../sys/processes.ts";
import { messageOf } from "../../errors.ts";
import { log } from "../../log.ts";
import type { Slirp4netnsOptions } from "./options.ts";
import type { Slirp4netnsProcess } from "./process.ts";

const WARM_OWNER = warmOwner("slirp4netns");

/** What makes one: the netns's sysctls, and the start of slirp4netns for it (the backend's). */
export interface WarmMaker {
  netSysctls: Array<[string, string]>;
  start(netns: string, logPath: string, track: HelperTrack): Promise<Slirp4netnsProcess>;
  intend(): HelperTrack;
}

/** A slirp4netns made ahead: its pinned netns, its process, its ledger row. */
export class WarmSlirp4netns implements WarmNetwork {
  private state: "ready" | "adopted" | "ended" = "ready";
  private readonly settled: Array<() => void> = [];

  constructor(
    /** The options it was started with, as keyOf() writes them. */
    readonly key: string,
    /** RUNTIME_DIR/pins/warm-<random>: the pin dir, whose name is in slirp4netns's argv. */
    readonly dir: string,
    readonly netns: string,
    readonly ino: number,
    readonly proc: Slirp4netnsProcess,
    readonly track: HelperTrack,
    readonly logPath: string,
  ) {}

  /** Calls `fn` once it is adopted or ended. */
  whenSettled(fn: () => void): void {
    if (this.state === "ready") this.settled.push(fn);
    else fn();
  }

  private settle(state: "adopted" | "ended"): void {
    this.state = state;
    for (const fn of this.settled.splice(0)) fn();
  }

  /** Running, and its pin still holds the netns it was made for. */
  usable(): boolean {
    return this.state === "ready" && isRunning(this.proc.pid) && pinHolds(this.netns, this.ino);
  }

  /**
   * Makes it the sandbox's (setup, after the create joined its netns): the
   * ledger row names the sandbox, the log moves to the sandbox's dir, the
   * pin goes (the sandbox's own pin holds the netns now). Returns the pid.
   */
  adopt(ctx: Pick<SetupContext, "helpers" | "dir">, logPath: string): number {
    if (this.state !== "ready") throw new Error(`internal: slirp4netns ${this.proc.pid} made ahead is ${this.state}`);
    ctx.helpers?.adopt(this.track);
    this.settle("adopted");
    try {
      renameSync(this.logPath, logPath);
    } catch (e) {
      log.debug(`slirp4netns ${this.proc.pid}: its log stays at ${this.logPath}: ${messageOf(e)}`);
    }
    for (const e of removePinDir(this.dir)) log.warn(`removing the pin of slirp4netns ${this.proc.pid} made ahead: ${e.message}`);
    return this.proc.pid;
  }

  /** Ends it unless a sandbox adopted it: the process killed, its row forgotten, its pin removed. */
  async release(): Promise<Error[]> {
    if (this.state !== "ready") return [];
    this.settle("ended");
    const errors: Error[] = [];
    try {
      this.proc.proc.kill("SIGKILL");
      await this.proc.proc.exited;
      this.track.cancel();
    } catch (e) {
      errors.push(e as Error);
    }
    errors.push(...removePinDir(this.dir));
    return errors;
  }
}

/**
 * `track`, also writing the pid into `into` when it is spawned. Module-level
 * so that the track (kept by the slirp4netns made ahead) holds these two
 * and nothing of refill()'s scope: the maker there holds the context of the
 * sandbox whose setup asked for it, and through its adopted slirp4netns the
 * one before (a chain back to the daemon's first sandbox, found by the soak).
 */
function recordingPid(track: HelperTrack, into: { pid?: number }): HelperTrack {
  return {
    ...track,
    spawned: (pid) => {
      into.pid = pid;
      track.spawned(pid);
    },
  };
}

function removePinDir(dir: string): Error[] {
  // Only its net pin is mounted; the others are absent, which removePins accepts.
  return removePins({ net: `${dir}/net`, uts: `${dir}/uts`, mnt: `${dir}/mnt` }, dir);
}

/** Which options a slirp4netns made ahead was started with (only the same ones may adopt it). */
export function keyOf(options: Slirp4netnsOptions): string {
  // Unset options left out: a record read back from the state has none of them.
  return JSON.stringify(
    Object.entries(options)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

/** How long a create waits for the one being made for its options (a slirp4netns starts in 4-9 ms). */
const TAKE_WAIT_MS = 10;

/** The pool: at most one ready, or one being made. */
export class WarmPool {
  private ready: WarmSlirp4netns | null = null;
  private making: { key: string; done: Promise<void>; pid?: number } | null = null;
  /** Taken by a create that has not adopted or released it yet. */
  private readonly taken = new Set<WarmSlirp4netns>();
  private dropped = false;

  /** The one made for `key`, now the caller's (waits for one being made for it); null when none fits. */
  async take(key: string): Promise<WarmSlirp4netns | null> {
    // One being made is worth a short wait (its slirp4netns is starting), not a slow start's: then the create starts its own.
    if (!this.ready && this.making?.key === key) await Promise.race([this.making.done, Bun.sleep(TAKE_WAIT_MS)]);
    const w = this.ready;
    if (!w || w.key !== key) return null;
    this.ready = null;
    if (w.usable()) {
      // Still this daemon's until the create's setup adopts it (or its rollback ends it): the ledger's sweep spares it meanwhile.
      this.taken.add(w);
      w.whenSettled(() => this.taken.delete(w));
      return w;
    }
    for (const e of await w.release()) log.debug(`slirp4netns made ahead, found unusable: ${e.message}`);
    return null;
  }

  /** Makes one for `key` in the background unless one is there or being made for it; one for other options is ended. */
  refill(key: string, paths: Paths, maker: WarmMaker): void {
    if (this.dropped || this.making || this.ready?.key === key) return;
    const old = this.ready;
    this.ready = null;
    const making: { key: string; done: Promise<void>; pid?: number } = { key, done: Promise.resolve() };
    // The pid as soon as it is spawned: the ledger's sweep spares exactly that process meanwhile.
    const tracked: WarmMaker = { ...maker, intend: () => recordingPid(maker.intend(), making) };
    const done = (async () => {
      if (old) for (const e of await old.release()) log.debug(`slirp4netns made ahead for other options: ${e.message}`);
      const w = await make(key, paths, tracked);
      if (this.dropped) {
        await w.release();
        return;
      }
      this.ready = w;
      log.debug(`slirp4netns ${w.proc.pid} made ahead (${w.dir})`);
    })()
      .catch((e) => log.debug(`making slirp4netns ahead: ${messageOf(e)}`))
      .finally(() => {
        if (this.making === making) this.making = null;
      });
    making.done = done;
    this.making = making;
  }

  claims(row: HelperRow): boolean {
    if (row.owner !== WARM_OWNER) return false;
    // A row whose pid is not recorded yet may be the one being made (the sweep's grace covers a young one anyway).
    if (row.pid === null) return this.making !== null && this.making.pid === undefined;
    return row.pid === this.ready?.proc.pid || row.pid === this.making?.pid || [...this.taken].some((w) => w.proc.pid === row.pid);
  }

  async drop(): Promise<void> {
    this.dropped = true;
    await this.making?.done;
    const w = this.ready;
    this.ready = null;
    if (w) for (const e of await w.release()) log.warn(`ending slirp4netns made ahead: ${e.message}`);
  }
}

async function make(key: string, paths: Paths, maker: WarmMaker): Promise<WarmSlirp4netns> {
  const dir = `${pinsRoot(paths)}/warm-${randomBytes(6).toString("hex")}`;
  const netns = `${dir}/net`;
  const ino = await createPinnedNetns(netns, { netSysctls: maker.netSysctls, fromSpare: true });
  try {
    const track = maker.intend();
    const logPath = `${dir}/slirp4netns.log`;
    const proc = await maker.start(netns, logPath, track);
    return new WarmSlirp4netns(key, dir, netns, ino, proc, track, logPath);
  } catch (e) {
    removePinDir(dir);
    throw e;
  }
}

/** At daemon start: the pins an earlier daemon made ahead and left (its slirp4netns goes with the ledger's sweep). */
export function clearWarmLeftovers(paths: Paths): Error[] {
  let entries: string[];
  try {
    entries = readdirSync(pinsRoot(paths));
  } catch {
    return []; // no pins yet
  }
  return entries.filter((e) => /^warm-[0-9a-f]{12}$/.test(e)).flatMap((e) => removePinDir(`${pinsRoot(paths)}/${e}`));
}
