// What the daemon does with creates a dead daemon (or a failed write) left
// half-made, and with helpers nobody owns (issue 10 item 2). A create's row
// carries `runtime.partial` from its insert until its last step (for -d:
// until its command runs); a partial row that no create of this daemon is
// working on can never be finished, so it is rolled back: its processes,
// ports, network and pins released, its files, request id and row deleted.
// Then the helper ledger kills any helper that no live sandbox claims.
// Daemon main thread, session namespaces.
import { readdirSync, rmSync, statSync } from "node:fs";
import { umountIfMounted } from "../sys/mount.ts";
import { killAll } from "../sys/processes.ts";
import { BurrowError, messageOf } from "../errors.ts";
import { log } from "../log.ts";
import { pinDir, sandboxDir, sandboxStateDir, type Paths } from "../paths.ts";
import type { CreateRequest, EnterTarget } from "../protocol.ts";
import type { HelperRow } from "../state/helpers.ts";
import type { NetworksCapability } from "../net/backend.ts";
import { networksOfRow } from "../net/registry.ts";
import { isDiskFull } from "../state/full.ts";
import { enterTarget, type CreateBookkeeping, type DaemonContext } from "./context.ts";
import type { Sandbox, SandboxStore } from "../state/sandboxes.ts";
import type { SeenRequest } from "./requests-seen.ts";

export type { CreateBookkeeping };

/** What these functions need of the service (kept narrow so they move with it). */
export interface RetryDeps extends CreateBookkeeping {
  paths: Paths;
  store: SandboxStore;
  /** Sandboxes whose create this daemon is working on. */
  creating: ReadonlySet<string>;
  /** Of this boot and session: its inodes and pids still name its own (reconcile() handles the others first). */
  current(s: Sandbox): boolean;
  /** Something (create, release, rm) holds the sandbox's lock. */
  busy(id: string): boolean;
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
  /** Kills what is left and releases ports, network and pins (not the row). */
  release(s: Sandbox): Promise<Error[]>;
  enterTarget(s: Sandbox): EnterTarget & { cwd: string };
  /** What a create may have made before it could record it: a CNI ADD. */
  releaseUnrecorded?(s: Sandbox): Promise<void>;
  /** Between the rollbacks and the sweep: the shared rootless namespace's supervision. */
  superviseShared?(): Promise<void>;
  /** The named networks' part of the rollback and the sweep (src/net/backend.ts). */
  networks?: Pick<NetworksCapability, "settled" | "claims" | "sweep">;
  /** Whether a ledger row is a helper started ahead that the backends hold (src/net/backend.ts WarmCapability). */
  warmClaims?(row: HelperRow): boolean;
}

/** The deps from the daemon's context and its releases. */
export function retryDeps(ctx: DaemonContext, releases: { release(s: Sandbox): Promise<Error[]> }): RetryDeps {
  return {
    ...ctx.bookkeeping,
    paths: ctx.paths,
    store: ctx.store,
    creating: ctx.creating,
    current: (s) => s.bootId === ctx.bootId && s.session === ctx.session.id,
    busy: (id) => ctx.locks.busy(id),
    withLock: (id, fn) => ctx.locks.run(id, fn),
    release: (s) => releases.release(s),
    enterTarget: (s) => enterTarget(ctx, s),
    superviseShared: () => ctx.backends.networks.supervise(),
    releaseUnrecorded: async (s) => {
      if (s.runtime.backend || !ctx.backends.forKind(s.runtime.network).bridge) return;
      await ctx.backends.networks.releaseUnrecorded(s, s.runtime.pins?.net ?? `${pinDir(ctx.paths, s.id)}/net`);
    },
    networks: ctx.backends.networks,
    warmClaims: (row) => ctx.backends.warm.claims(row),
  };
}

export type CreateAnswer = { id: string; name: string; enter?: EnterTarget & { cwd: string } };

export function findOrNull(store: SandboxStore, id: string): Sandbox | null {
  try {
    return store.find(id);
  } catch {
    return null;
  }
}

/**
 * Abandoned: partial, and no create of this daemon will finish it. Such a
 * row is being rolled back (or waits for room to be deleted): it is not
 * listed, and a create of its name first finishes that rollback.
 */
export function abandoned(d: Pick<RetryDeps, "creating">, s: Sandbox): boolean {
  return !!s.runtime.partial && !d.creating.has(s.id);
}

/** Before a create takes `name`: a rolled-back create that still holds it lets go (if the disk lets it). */
export async function freeName(d: RetryDeps, name: string): Promise<void> {
  const stale = d.store.all().find((s) => s.name === name && abandoned(d, s));
  if (!stale) return;
  await rollBackAbandoned(d, stale);
  if (d.store.nameTaken(name))
    throw new BurrowError(
      `the sandbox name "${name}" is still held by a create that was rolled back, whose row cannot be deleted yet: ${d.paths.stateDir} is full; free some space there and try again`,
      { kind: "disk-full" },
    );
}

/**
 * The answer to a retried create whose first attempt this daemon is not
 * handling: the first attempt's result, or null (run the create afresh)
 * once a half-made first attempt is rolled back.
 */
export async function replayCreate(d: RetryDeps, seen: SeenRequest, req: CreateRequest): Promise<CreateAnswer | null> {
  const s = findOrNull(d.store, seen.sandboxId);
  if (s && abandoned(d, s)) {
    await rollBackAbandoned(d, s);
    return null;
  }
  if (!s) {
    // Made and already removed (run -d --rm of a short command): its id is the answer.
    if (req.detach) return { id: seen.sandboxId, name: seen.name };
    throw new BurrowError(`sandbox ${seen.name} (${seen.sandboxId.slice(0, 12)}) was created by this request, but it has exited and is gone`, {
      kind: "not-running",
    });
  }
  log.debug(`create of ${s.name} retried: answering with the first attempt's sandbox`);
  return { id: s.id, name: s.name, enter: s.runtime.pins ? d.enterTarget(s) : undefined };
}

/** Rolls back one abandoned create, under its lock. Errors are logged; a failed write leaves the row for the next try. */
export async function rollBackAbandoned(d: RetryDeps, s: Sandbox): Promise<void> {
  await d.withLock(s.id, async () => {
    const cur = findOrNull(d.store, s.id);
    if (!cur || !abandoned(d, cur)) return;
    // A plugin the dead daemon started may still be finishing its ADD (a
    // supervised daemon is back within ~60 ms, before portmap's iptables
    // calls end): a DEL run before it ends would leave the rules it adds next.
    await d.networks?.settled(cur.id);
    // Before the pins go: the plugins' DEL wants the netns.
    await d.releaseUnrecorded?.(cur);
    const errors = await d.release(cur);
    // Pins made but not yet recorded (the daemon died right after making them).
    errors.push(...(await removeUnrecordedPins(pinDir(d.paths, cur.id))));
    try {
      rmSync(sandboxDir(d.paths, cur.id), { recursive: true, force: true });
      rmSync(sandboxStateDir(d.paths, cur.id), { recursive: true, force: true });
    } catch (e) {
      errors.push(e as Error);
    }
    try {
      d.requests.forget(cur.id);
      d.store.delete(cur.id);
      log.warn(`rolled back the create of ${cur.name} (${cur.id.slice(0, 12)}) that a daemon left half-made`);
    } catch (e) {
      // A full disk: the row stays partial, housekeeping tries again (with the reserve's room).
      if (isDiskFull(e)) d.reserve?.release();
      errors.push(new Error(`the state database: ${messageOf(e)}`));
    }
    for (const e of errors) log.warn(`rollback of ${cur.name}: ${e.message}`);
  });
}

/** Rolls back every abandoned create, then kills helpers no live sandbox owns. */
export async function recoverCreates(d: RetryDeps): Promise<void> {
  for (const s of d.store.all()) {
    if (abandoned(d, s) && !d.busy(s.id) && (d.current(s) || s.status === "exited")) await rollBackAbandoned(d, s);
  }
  await d.superviseShared?.();
  sweepHelpers(d);
  d.reserve?.ensure();
}

/** Kills what runs in a pinned but unrecorded mount namespace, unmounts every pin under `dir`, removes it. */
export async function removeUnrecordedPins(dir: string): Promise<Error[]> {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const errors: Error[] = [];
  try {
    // A bind-mounted nsfs file has the namespace's inode.
    if (entries.includes("mnt")) await killAll(statSync(`${dir}/mnt`).ino, `${dir}/mnt`);
  } catch {}
  for (const e of entries) {
    try {
      umountIfMounted(`${dir}/${e}`);
    } catch (err) {
      errors.push(err as Error);
    }
  }
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch (err) {
    errors.push(err as Error);
  }
  return errors;
}

/** The networks a sandbox is on: what it asked for, and what it was connected to since. */
const networksOf = networksOfRow;

/**
 * The networks some sandbox that runs, is being made or is being released
 * is on. One look at the rows per sweep (every second), taken on first use:
 * the sweep is synchronous, so it stays true throughout.
 */
function networksInUse(d: RetryDeps): (network: string) => boolean {
  let inUse: Set<string> | null = null;
  return (network) =>
    (inUse ??= new Set(d.store.all().flatMap((s) => (s.status !== "exited" || d.creating.has(s.id) || d.busy(s.id) ? networksOf(s) : [])))).has(network);
}

export function sweepHelpers(d: RetryDeps): HelperRow[] {
  const used = networksInUse(d);
  const killed = d.helpers.sweep((row) => {
    // Started ahead, owned by no sandbox yet: live while a backend holds it.
    if (d.warmClaims?.(row)) return true;
    // The shared namespace's helpers and each network's (dnsname's dnsmasq).
    const claimed = d.networks?.claims(row, used);
    if (claimed !== undefined) return claimed;
    const id = row.owner.startsWith("sandbox:") ? row.owner.slice(8) : null;
    if (!id) return false;
    if (d.creating.has(id) || d.busy(id)) return true;
    const s = findOrNull(d.store, id);
    return !!s && s.status !== "exited" && !s.runtime.partial;
  });
  // Per-network helpers of networks no sandbox uses (src/net/cni/named.ts).
  d.networks?.sweep(used);
  return killed;
}
