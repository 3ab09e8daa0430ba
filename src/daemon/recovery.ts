// What the daemon finds on its own rather than being told: sandboxes whose
// processes or pins vanished (reap, every second), what a reboot, a dead
// session or a killed daemon left (reconcile, at start), and a dead holder
// (sessionLost). Daemon main thread.
import { accelerationScope } from "../accelerate/scope-of.ts";
import { messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { pinDir } from "../paths.ts";
import { isRunning, killOtherSession, pidsInMountNs, startTimeOf } from "../sys/processes.ts";
import { pinHolds, removePins } from "../namespaces/pins.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import { now, sandboxLabel, type DaemonContext } from "./context.ts";
import type { SandboxReleases } from "./release.ts";
import { acceleratorEgress, recoverEgress } from "./egress.ts";
import type { LearnedEntry } from "../accelerate/protocol.ts";
import { recoverCreates, removeUnrecordedPins, retryDeps } from "./create-retry.ts";
import { readdirSync, rmSync, statSync } from "node:fs";
import { sandboxDir, sandboxStateDir } from "../paths.ts";
import { sweepUnrecorded } from "../state/helpers.ts";

/** A sandbox id (create.ts: 32 random bytes, hex); anything else under pins/ is not a sandbox's. */
const SANDBOX_ID = /^[0-9a-f]{64}$/;

/** Whether process `pid` lives in this daemon's user namespace (rootless: the holder's). */
function sameUserNamespace(pid: number): boolean {
  try {
    return statSync(`/proc/${pid}/ns/user`).ino === statSync("/proc/self/ns/user").ino;
  } catch {
    return false;
  }
}

/** A sandbox still "created" with no process after this long was abandoned by its CLI. */
const ABANDONED_MS = 10_000;

export function processesOf(s: Sandbox): number[] {
  return s.runtime.ino ? pidsInMountNs(s.runtime.ino.mnt) : [];
}

/**
 * True when the sandbox's mount namespace pin is an nsfs mount, in this
 * daemon's mount namespace, of the very namespace its row names (the device
 * is checked too: a leftover empty pin file's tmpfs inode number may equal it).
 */
function pinnedHere(s: Sandbox): boolean {
  const { pins, ino } = s.runtime;
  if (!pins || !ino) return false;
  try {
    const pin = statSync(pins.mnt);
    return pin.ino === ino.mnt && pin.dev === statSync("/proc/self/ns/mnt").dev;
  } catch {
    return false;
  }
}

export class SandboxRecovery {
  constructor(
    private readonly ctx: DaemonContext,
    private readonly releases: SandboxReleases,
  ) {}

  /** Sandboxes whose processes or pins vanished behind our back. */
  async reap(restore = false): Promise<void> {
    const { ctx, releases } = this;
    // Creates a dead daemon or a failed write left half-made, and helpers nobody owns.
    await recoverCreates(retryDeps(ctx, releases));
    for (const s of ctx.store.all()) {
      if (s.status === "exited" || s.runtime.partial) continue;
      if (ctx.children.has(s.id) || ctx.creating.has(s.id)) continue;
      if (ctx.restarts.holds(s.id)) continue; // restart hook: waiting for its back-off
      const pinsOk = !!s.runtime.pins && !!s.runtime.ino && pinHolds(s.runtime.pins.mnt, s.runtime.ino.mnt);
      if (restore && pinsOk && s.runtime.ports?.length) {
        await ctx.ports.restore(s).catch((e) => {
          s.runtime.networkError = `ports not restored: ${messageOf(e)}`;
          ctx.store.update(s);
        });
      }
      // Egress rules: the kernel kept the table (and its learned sets); the resolver's sockets died with the old daemon.
      // Before the accelerator: it gets the learned addresses read back with the listener.
      let learned: LearnedEntry[] = [];
      if (restore && pinsOk && s.spec.egress) {
        learned = await recoverEgress(ctx, s).catch((e) => {
          log.warn(`egress of ${sandboxLabel(s)}: its resolver could not be served again: ${messageOf(e)}`);
          s.runtime.networkError = `egress resolver not restored: ${messageOf(e)}`;
          ctx.store.update(s);
          return [];
        });
      }
      // Listeners of accelerated sandboxes, from their keepers: trapped calls have waited for this.
      if (restore && pinsOk && s.spec.accelerate && s.runtime.ino) {
        try {
          ctx.accelerator.recover(s.id, accelerationScope(s, s.runtime.ino.net), acceleratorEgress(s, learned));
          // Published ports a server of it held while no daemon ran: the forwarder takes each back once it lets go.
          for (const held of ctx.ports.heldAtRestore(s)) ctx.accelerator.watchHeld(s.id, held);
        } catch (e) {
          log.warn(`accelerate: ${sandboxLabel(s)}: ${messageOf(e)}`);
        }
      }
      if (s.status === "running") {
        // No start time: the command was gone when its start was reported
        // (a started report behind a short command's exit), so its exit
        // report is the only other news of it, and one refused or lost
        // (a run that does not wait for its answer) would leave it running.
        const gone = !s.pid || !s.pidStart || startTimeOf(s.pid) !== s.pidStart;
        if (gone || !pinsOk) await releases.exited(s.id, null);
      } else if (!pinsOk) {
        await releases.exited(s.id, null);
      } else if (Date.now() - Date.parse(s.createdAt) > ABANDONED_MS && !processesOf(s).length) {
        // Created for a foreground run whose CLI died before starting the
        // command: nobody will ever start it.
        await releases.exited(s.id, null);
      }
    }
  }

  /**
   * At start: drop what a reboot or a dead session took away, and finish
   * releases a killed daemon left half done (an exited row that still has
   * pins, a network or ports; a --rm row not yet removed).
   */
  async reconcile(): Promise<void> {
    const { ctx, releases } = this;
    // Sandboxes whose rows went with the state database: nothing may run unrecorded.
    await this.stopUnrecorded();
    // The pins of networks an earlier daemon made ahead (their helpers go with the ledger's sweep below).
    for (const e of await ctx.backends.warm.clearLeftovers()) log.warn(`removing a network made ahead by an earlier daemon: ${e.message}`);
    const removeLocked = (s: Sandbox) =>
      ctx.locks
        .run(s.id, () => releases.remove(s))
        .then((errs) => {
          for (const e of errs) log.warn(`reconcile: removing ${sandboxLabel(s)}: ${e.message}`);
        })
        .catch((e) => log.warn(`reconcile: removing ${sandboxLabel(s)}: ${messageOf(e)}`));
    // First: a half-made create must not get its ports restored by reap() below.
    await recoverCreates(retryDeps(ctx, releases));
    for (const s of ctx.store.all()) {
      const stale = s.bootId !== ctx.bootId || s.session !== ctx.session.id;
      const leftovers = !!(s.runtime.pins || s.runtime.backend || s.runtime.ports?.length);
      const wasRunning = s.status !== "exited";
      if (wasRunning && !stale) continue; // reap() checks those
      if (wasRunning && s.bootId === ctx.bootId && s.session !== ctx.session.id && pinnedHere(s)) {
        // Its namespaces are pinned in this session's mount namespace: it
        // is ours, made by a `start` whose row kept the session of an
        // earlier, dead holder (issue 19 item 3, rows written before the
        // fix). Adopt it; reap() below checks it like any other.
        log.warn(`reconcile: ${sandboxLabel(s)} is pinned in this session but its row named session ${s.session}: adopted`);
        s.session = ctx.session.id;
        ctx.store.update(s);
        continue;
      }
      if (!wasRunning && !leftovers) {
        if (s.spec.rm) await removeLocked(s);
        continue;
      }
      if (s.bootId !== ctx.bootId) {
        // After a reboot nothing of it runs, and its inode numbers and pids
        // may now name someone else's: forget them, clean only our paths.
        if (s.runtime.pins) for (const e of removePins(s.runtime.pins, pinDir(ctx.paths, s.id))) log.debug(`reconcile ${sandboxLabel(s)}: ${e.message}`);
        s.runtime.ino = null;
        s.runtime.backend = undefined;
        s.runtime.ports = undefined;
        s.runtime.pins = null;
      } else if (s.session !== ctx.session.id) {
        // A dead session's processes may still run: kill them by namespace.
        // Its pins are unreachable (its mount namespace is gone).
        if (s.runtime.ino) await killOtherSession(s.runtime.ino);
        // Its pin files are still in the runtime dir (the mounts on them
        // went with that session's mount namespace): remove them.
        if (s.runtime.pins) for (const e of removePins(s.runtime.pins, pinDir(ctx.paths, s.id))) log.debug(`reconcile ${sandboxLabel(s)}: ${e.message}`);
        s.runtime.pins = null;
      }
      s.status = "exited";
      s.finishedAt ??= now();
      // Debug only: what a dead session or a reboot took away is mostly gone already.
      for (const e of await releases.release(s)) log.debug(`reconcile ${sandboxLabel(s)}: ${e.message}`);
      ctx.store.update(s);
      if (wasRunning) ctx.store.event("died", s, { reason: "session gone" });
      if (s.spec.rm) await removeLocked(s);
    }
    await this.reap(true);
    // After the shared namespace's supervision (in reap) took down what it no longer needs.
    const killed = sweepUnrecorded(ctx.bookkeeping.helpers, ctx.paths.stateDir, (pid) => ctx.paths.rootless && sameUserNamespace(pid));
    // Gone before any request is answered: "nothing unrecorded runs" holds once reconcile is done.
    for (let i = 0; i < 200 && killed.some((k) => isRunning(k.pid)); i++) await Bun.sleep(10);
  }

  /**
   * Sandboxes pinned under RUNTIME_DIR/pins that have no row: their row went
   * with a state database that was deleted, or set aside as damaged by
   * `burrow system recover` (issue 19 item 8). A row is all that says how a
   * sandbox was made (its command, ports, network), so it cannot be rebuilt
   * from the pins: it is stopped instead, as a podman user would expect of a
   * container its engine has no record of. Its bridge attachments are
   * deleted from the CNI cache while its netns still lives; its processes
   * are killed by mount namespace, its pins unmounted, its files removed;
   * its helpers (slirp4netns, pasta) are killed by their markers afterwards
   * (sweepUnrecorded). Only at start: this daemon makes no sandbox yet.
   */
  async stopUnrecorded(): Promise<void> {
    const { ctx } = this;
    const pins = `${ctx.paths.runtimeDir}/pins`;
    const ids = new Set<string>();
    for (const dir of [pins, `${ctx.paths.runtimeDir}/sandboxes`]) {
      try {
        for (const id of readdirSync(dir)) if (SANDBOX_ID.test(id)) ids.add(id);
      } catch {} // none yet
    }
    for (const id of ids) {
      if (ctx.store.has(id) || ctx.creating.has(id)) continue;
      await ctx.locks.run(id, async () => {
        const errors = await ctx.backends.networks.releaseByRecords(id, `${pinDir(ctx.paths, id)}/net`);
        errors.push(...(await removeUnrecordedPins(pinDir(ctx.paths, id))));
        try {
          rmSync(sandboxDir(ctx.paths, id), { recursive: true, force: true });
          rmSync(sandboxStateDir(ctx.paths, id), { recursive: true, force: true });
        } catch (e) {
          errors.push(e as Error);
        }
        for (const e of errors) log.warn(`stopping unrecorded sandbox ${id.slice(0, 12)}: ${e.message}`);
        log.warn(`stopped sandbox ${id.slice(0, 12)}: the state database has no record of it`);
        ctx.store.event("died", { id, name: id.slice(0, 12) }, { reason: "no record" });
      });
    }
  }

  /** The holder died: every sandbox of this session is gone. */
  async sessionLost(): Promise<void> {
    this.ctx.restarts.close(); // restart hook: nothing comes back without the session
    for (const s of this.ctx.store.all()) {
      if (s.status === "exited") continue;
      await this.releases.exited(s.id, null).catch((e) => log.warn(`session lost: releasing ${sandboxLabel(s)}: ${messageOf(e)}`));
    }
  }
}
