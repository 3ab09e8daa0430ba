// What the daemon finds on its own rather than being told: sandboxes whose
// processes or pins vanished (reap, every second), what a reboot, a dead
// session or a killed daemon left (reconcile, at start), and a dead holder
// (sessionLost). Daemon main thread.
import { statSync } from "node:fs";
import { messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { pinDir } from "../paths.ts";
import { killOtherSession, pidsInMountNs, startTimeOf } from "../sys/processes.ts";
import { pinHolds, removePins } from "../namespaces/pins.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import { now, sandboxLabel, type DaemonContext } from "./context.ts";
import type { SandboxReleases } from "./release.ts";
import { recoverCreates, retryDeps } from "./create-retry.ts";

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
      if (s.status === "running") {
        const gone = !s.pid || startTimeOf(s.pid) !== s.pidStart;
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
