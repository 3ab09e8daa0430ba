// Supervision of the rootless CNI namespace's shared helper, slirp4netns or
// pasta (issue 10 item 5): every rootless bridge sandbox reaches the outside through it, and
// a kill of it used to go unnoticed until someone looked. Now its exit (seen
// at once when this daemon started slirp4netns, else at the next
// housekeeping tick, within a second: pasta forks away from its starter) is reported (daemon log and a `burrow events` entry) and
// a new one is started for the same namespace; bridges, veths and rules
// inside live on. A helper that keeps dying is restarted at most
// MAX_RESTARTS times a minute, then left dead and reported as given up.
// A namespace no bridge sandbox uses any more (a create rolled back after a
// daemon crash) is torn down here. Daemon main thread.
import { messageOf } from "../../errors.ts";
import { log } from "../../log.ts";
import type { RootlessNetns } from "./rootless-netns.ts";

const MAX_RESTARTS = 5;
const WINDOW_MS = 60_000;

/** `burrow events` entries: type and attributes. */
export type Report = (type: string, attrs: Record<string, unknown>) => void;

export class RootlessSupervisor {
  private restarts: number[] = [];
  private gaveUp = false;
  private running: Promise<void> | null = null;

  constructor(
    private readonly rns: RootlessNetns,
    /** Bridge sandboxes (not exited, creates included) and ADDs/DELs under way. */
    private readonly inUse: () => boolean,
    /** Tears the unused namespace down (CniNetworking.releaseShared). */
    private readonly release: () => Promise<Error[]>,
    private readonly report: Report,
  ) {
    rns.hooks.onSlirpExit = (pid) => {
      log.warn(`the rootless bridge networks' slirp4netns (pid ${pid}) exited`);
      void this.check();
    };
  }

  /** One pass; concurrent calls share it. */
  check(): Promise<void> {
    this.running ??= this.checkNow().finally(() => (this.running = null));
    return this.running;
  }

  private async checkNow(): Promise<void> {
    if (!this.rns.exists() || this.rns.settling) return;
    if (!this.inUse()) {
      const errs = await this.release();
      for (const e of errs) log.warn(`tearing down the unused rootless CNI namespace: ${e.message}`);
      return;
    }
    if (!this.rns.helperDead()) {
      this.gaveUp = false;
      return;
    }
    if (this.gaveUp) return;
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < WINDOW_MS);
    const helper = this.rns.helperName;
    if (this.restarts.length >= MAX_RESTARTS) {
      this.gaveUp = true;
      log.error(
        `the rootless bridge networks' ${helper} died ${MAX_RESTARTS} times within a minute: not restarting it (bridge sandboxes have no outside connectivity; see ${this.rns.dir}/${helper}.log)`,
      );
      this.report("network-helper-gave-up", { helper, scope: "rootless-netns", restarts: MAX_RESTARTS });
      return;
    }
    this.restarts.push(now);
    try {
      const r = await this.rns.revive();
      if (!r) return;
      log.warn(`restarted the rootless bridge networks' ${r.helper} (pid ${r.oldPid} died, new pid ${r.pid})`);
      this.report("network-helper-restarted", { helper: r.helper, scope: "rootless-netns", oldPid: r.oldPid, pid: r.pid });
    } catch (e) {
      log.warn(`restarting the rootless bridge networks' ${helper}: ${messageOf(e)}`);
      this.report("network-helper-died", { helper, scope: "rootless-netns", error: messageOf(e) });
    }
  }

  /** For health(): the shared helper is dead right now. */
  down(): boolean {
    return this.rns.exists() && this.rns.helperDead();
  }
}
