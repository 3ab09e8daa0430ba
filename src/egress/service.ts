// Main-thread side of the egress Worker (src/egress/worker.ts): the daemon
// attaches each sandbox with a policy (the four fds its connector thread
// made in the sandbox's netns) and detaches it on release. The worker starts
// with the first attach and ends with close(); if it dies, the service says
// so in the log, starts another and attaches every sandbox again (the fds are
// process-wide, so they outlive the thread; the records here keep them).
//
// Refusals come from the worker one by one; here they are folded per
// sandbox (refusals.ts RefusalEvents) before the daemon records them, with a
// flush timer that runs about once a second only while some sandbox has
// refusals whose repeats may still be due.
import { WindowCount } from "../window-count.ts";
import { log } from "../log.ts";
import { close } from "../sys/ns.ts";
import { pipe, setBlocking, setPipeSize, writeAll } from "../sys/sockets.ts";
import { workerUrl } from "../workers.ts";
import { LearnedAddresses } from "./learned.ts";
import { DEFAULT_REFUSAL_LIMITS, type Refusal, type RefusalEvent, RefusalEvents, type RefusalLimits, type RefusalStatus, refusalStatus } from "./refusals.ts";
import type { EgressAttach, EgressCommand, EgressInit, EgressReport } from "./worker-protocol.ts";

export type { EgressAttach };
export type { RefusalStatus };

/** A folded refusal event and the status `burrow events` records it with. */
export interface EgressRefusalEvent extends RefusalEvent {
  status: RefusalStatus;
}

export interface EgressService {
  /** Resolves once the worker serves the sandbox; rejects (its fds closed) when it cannot. */
  attach(a: EgressAttach): Promise<void>;
  /** Stops serving, closes the fds; the sandbox's folded refusals still due are delivered first. */
  detach(id: string): void;
  /** inspect's NetworkSettings.EgressLearned: addresses learned for the sandbox and not expired. */
  learnedCount(id: string): number;
  /** A refusal made outside the ruleset and the resolver (--accelerate's supervisor): folded into events like theirs. */
  report(id: string, refusal: Refusal): void;
  close(): Promise<void>;
}

export interface EgressServiceDeps {
  /** A refusal event to record, already folded by RefusalEvents per sandbox; `status` is the event's status. */
  onRefusal(id: string, event: EgressRefusalEvent): void;
  /** An address learned for allow rule `allowIndex` until `expiresAt` (ms epoch): --accelerate's supervisor needs it. */
  onLearned?(id: string, allowIndex: number, address: string, expiresAt: number): void;
}

/** Tests only: stand-ins the worker loads instead of nftables and NFLOG, and an unprivileged upstream port. */
export interface EgressServiceOptions {
  learnerModule?: string;
  nflogModule?: string;
  upstreamPort?: number;
  /** Tests only: a shorter window than a minute. */
  refusalLimits?: RefusalLimits;
  /** Tests only: a shorter idle time for DNS-over-TCP connections. */
  tcpIdleMs?: number;
  /** Tests only: a shorter deadline for one DNS-over-TCP message to arrive whole. */
  tcpFrameMs?: number;
}

/** The attach command: everything but what the main thread alone keeps. */
function attachCommand(a: EgressAttach): EgressCommand {
  const { learned: _learned, ...rest } = a;
  return { op: "attach", ...rest };
}

/** The allow rule a learned set (nft.ts learnedSet: `allow_N_v4`) belongs to, or null for another name. */
export function learnedSetRule(set: string): number | null {
  const m = /^allow_(\d+)_v[46]$/.exec(set);
  return m ? Number(m[1]) : null;
}

/** How often folded refusals are flushed while any may be due. */
const FLUSH_MS = 1000;
/** More deaths than this within RESTART_WINDOW_MS and the worker is not started again for the sandboxes it served. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 10_000;
/** How long close() waits for the worker to close everything before terminating it. */
const EXIT_WAIT_MS = 2000;

interface Served {
  attach: EgressAttach;
  events: RefusalEvents;
  learned: LearnedAddresses;
  /** When the last refusal was offered: its repeats are due within a window of it. */
  lastOffer: number;
  /**
   * The worker could not serve it (and closed its fds): kept for the
   * refusals --accelerate's supervisor still reports for the sandbox, never
   * attached again, its fds never closed again (their numbers may be
   * someone else's by now).
   */
  failed?: true;
}

export function createEgressService(deps: EgressServiceDeps, options: EgressServiceOptions = {}): EgressService {
  const served = new Map<string, Served>();
  const attaching = new Map<string, { resolve(): void; reject(e: Error): void }>();
  const encoder = new TextEncoder();
  let worker: Worker | undefined;
  let controlFd = -1;
  let controlReadFd = -1;
  let flushTimer: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  /** The worker's deaths lately. */
  const restarts = new WindowCount(RESTART_WINDOW_MS);

  function deliver(id: string, s: Served, events: RefusalEvent[]): void {
    for (const event of events) {
      try {
        deps.onRefusal(id, { ...event, status: refusalStatus(s.attach.policy.logOnly, event) });
      } catch (e) {
        log.error(`egress: recording a refusal of sandbox ${s.attach.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  function flush(): void {
    const now = Date.now();
    let due = false;
    for (const [id, s] of served) {
      // The window holding the last refusal ends within windowMs of it; one more tick after that rolls it.
      if (now > s.lastOffer + s.events.limits.windowMs + 2 * FLUSH_MS) continue;
      deliver(id, s, s.events.flush(now));
      due = true;
    }
    if (!due) {
      clearInterval(flushTimer);
      flushTimer = undefined;
    }
  }

  /** One refusal of sandbox `id`, from wherever it was made: folded per sandbox, flushed by the timer while any is pending. */
  function offer(id: string, refusal: Refusal): void {
    const s = served.get(id);
    if (!s) return;
    const now = Date.now();
    s.lastOffer = now;
    deliver(id, s, s.events.offer(refusal, now));
    if (!flushTimer) {
      flushTimer = setInterval(flush, FLUSH_MS);
      flushTimer.unref();
    }
  }

  function onReport(w: Worker, m: EgressReport): void {
    if (w !== worker) return;
    switch (m.op) {
      case "attached":
        attaching.get(m.id)?.resolve();
        attaching.delete(m.id);
        break;
      case "attach-failed": {
        const s = served.get(m.id);
        if (s) s.failed = true;
        attaching.get(m.id)?.reject(new Error(`cannot serve the egress resolver: ${m.message}`));
        attaching.delete(m.id);
        break;
      }
      case "learned": {
        const s = served.get(m.id);
        if (!s) break;
        const now = Date.now();
        s.learned.add(m.address, m.allowIndex, (m.expiresAt - now) / 1000, now);
        deps.onLearned?.(m.id, m.allowIndex, m.address, m.expiresAt);
        break;
      }
      case "refused":
        offer(m.id, m.refusal);
        break;
      case "error":
        log.error(`egress resolver: ${m.message}`);
        break;
      case "fatal":
        restart(w, m.message);
        break;
      case "started":
      case "exited":
        break;
    }
  }

  function ensureWorker(): void {
    if (worker) return;
    const [readFd, writeFd] = pipe();
    setPipeSize(writeFd, 1 << 20); // room for a daemon attaching many sandboxes at once; best effort
    // An attach line (a policy of up to 256 rules) may pass PIPE_BUF: written whole, waiting for room.
    setBlocking(writeFd);
    const w = new Worker(workerUrl("egress/worker.ts"));
    // The sandboxes keep the daemon alive, not their resolver.
    w.unref();
    w.onmessage = (e: MessageEvent<EgressReport>) => onReport(w, e.data);
    w.onerror = (e) => restart(w, e.message);
    // A thread that ended without a word (process.exit in it): the same.
    w.addEventListener("close", () => restart(w, "the thread ended"));
    const init: EgressInit = {
      op: "init",
      controlFd: readFd,
      upstreamPort: options.upstreamPort ?? 53,
      ...(options.learnerModule ? { learnerModule: options.learnerModule } : {}),
      ...(options.nflogModule ? { nflogModule: options.nflogModule } : {}),
      ...(options.tcpIdleMs ? { tcpIdleMs: options.tcpIdleMs } : {}),
      ...(options.tcpFrameMs ? { tcpFrameMs: options.tcpFrameMs } : {}),
    };
    w.postMessage(init);
    worker = w;
    controlFd = writeFd;
    controlReadFd = readFd;
  }

  function send(m: EgressCommand): void {
    ensureWorker();
    writeAll(controlFd, encoder.encode(`${JSON.stringify(m)}\n`));
  }

  /** The worker died: another one serves every sandbox again (queries in flight and TCP connections are lost). */
  function restart(w: Worker, why: string): void {
    if (w !== worker) return;
    const again = restarts.add(Date.now()) <= MAX_RESTARTS;
    log.error(`the egress resolver stopped, ${again ? "restarting it" : "too often: not restarting it until the next sandbox starts"}: ${why}`);
    worker = undefined;
    w.terminate();
    close(controlFd);
    close(controlReadFd);
    controlFd = -1;
    controlReadFd = -1;
    if (closed) return;
    if (!again) {
      // A sandbox that kills the worker each time would otherwise restart it forever: theirs fail closed (no DNS).
      for (const [id, s] of served) {
        if (!s.failed) for (const fd of Object.values(s.attach.fds)) close(fd);
        attaching.get(id)?.reject(new Error(`the egress resolver stopped: ${why}`));
      }
      attaching.clear();
      served.clear();
      return;
    }
    for (const s of served.values()) if (!s.failed) send(attachCommand(s.attach));
  }

  return {
    attach(a) {
      if (closed) {
        // The contract: from attach() on the fds are ours, in every case.
        for (const fd of Object.values(a.fds)) if (fd >= 0) close(fd);
        return Promise.reject(new Error("the egress service is closed"));
      }
      const s: Served = {
        attach: a,
        events: new RefusalEvents(options.refusalLimits ?? DEFAULT_REFUSAL_LIMITS),
        learned: new LearnedAddresses(),
        lastOffer: 0,
      };
      // An attach of a served id replaces it (the worker closes the old fds).
      attaching.get(a.id)?.reject(new Error("attached again"));
      served.set(a.id, s);
      const done = new Promise<void>((resolve, reject) => attaching.set(a.id, { resolve, reject }));
      const now = Date.now();
      for (const e of a.learned ?? []) {
        const allowIndex = learnedSetRule(e.set);
        if (allowIndex === null || e.expiresInMs <= 0) continue;
        s.learned.add(e.address, allowIndex, e.expiresInMs / 1000, now);
        deps.onLearned?.(a.id, allowIndex, e.address, now + e.expiresInMs);
      }
      try {
        send(attachCommand(a));
      } catch (e) {
        served.delete(a.id);
        attaching.delete(a.id);
        for (const fd of Object.values(a.fds)) close(fd);
        return Promise.reject(e);
      }
      return done;
    },

    detach(id) {
      const s = served.get(id);
      if (!s) return;
      served.delete(id);
      attaching.get(id)?.reject(new Error("detached"));
      attaching.delete(id);
      // Repeats folded but not yet due: delivered now, so every refusal is counted.
      deliver(id, s, s.events.flush(Number.MAX_SAFE_INTEGER));
      if (worker) send({ op: "detach", id });
      else if (!s.failed) for (const fd of Object.values(s.attach.fds)) close(fd);
    },

    report(id, refusal) {
      offer(id, refusal);
    },

    learnedCount(id) {
      return served.get(id)?.learned.prune(Date.now()) ?? 0;
    },

    async close() {
      if (closed) return;
      closed = true;
      for (const [id, s] of served) deliver(id, s, s.events.flush(Number.MAX_SAFE_INTEGER));
      clearInterval(flushTimer);
      flushTimer = undefined;
      for (const [, a] of attaching) a.reject(new Error("the egress service closed"));
      attaching.clear();
      served.clear();
      const w = worker;
      if (!w) return;
      const exited = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), EXIT_WAIT_MS);
        w.addEventListener("message", (e: MessageEvent<EgressReport>) => {
          if (e.data.op === "exited" || e.data.op === "fatal") {
            clearTimeout(timer);
            resolve(e.data.op === "exited");
          }
        });
      });
      // The worker detaches (closes) every sandbox on its way out.
      writeAll(controlFd, encoder.encode(`${JSON.stringify({ op: "exit" } satisfies EgressCommand)}\n`));
      const clean = await exited;
      worker = undefined;
      w.terminate();
      close(controlFd);
      if (!clean) close(controlReadFd); // else the worker closed it
      controlFd = -1;
      controlReadFd = -1;
    },
  };
}
