// `burrow port add|rm`: ports published on, or taken off, a running
// sandbox. Under the sandbox's lock, so that a stop, rm, restart, exit or
// network change never interleaves; all or nothing: a refused or failed
// change leaves no listener, no forward and the row as it was. The row's
// runtime.ports (what ps, port, inspect and a restarted daemon's restore
// read) and its spec.ports (what `start` publishes again) change together.
// Daemon main thread, session namespaces.
import { BurrowError, messageOf } from "../errors.ts";
import { log } from "../log.ts";
import type { PortChoice } from "../net/backend.ts";
import { modeOfRow } from "../net/registry.ts";
import { isPortDriverName } from "../ports/driver.ts";
import { checkAdditions, formatSpec, parseRemovals, specWithout } from "../ports/live.ts";
import { formatPortLine } from "../ports/spec.ts";
import type { PortRecord, Sandbox } from "../state/sandboxes.ts";
import type { DaemonContext } from "./context.ts";

export type PortChangeReply = { id: string; name: string; ports: PortRecord[] };

/** The row and its ports as they are now, for a sandbox that runs. */
function runningNow(ctx: DaemonContext, id: string, isExiting: (id: string) => boolean, verb: "add" | "remove"): Sandbox {
  const s = ctx.store.find(id);
  if (s.status !== "running" || isExiting(id) || !s.runtime.pins)
    throw new BurrowError(`cannot ${verb} ports ${verb === "add" ? "to" : "of"} ${s.name}: it is not running (state: ${s.status}); start it first`, {
      kind: "not-running",
    });
  return s;
}

/** Only the four fields a reply carries. */
const plain = (p: PortRecord): PortRecord => ({ hostIp: p.hostIp, hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol });

/** Writes runtime and spec; on a failed write puts the row back as it was and rethrows. */
function save(ctx: DaemonContext, s: Sandbox, before: Sandbox): void {
  try {
    ctx.store.update(s);
    ctx.store.updateSpec(s);
  } catch (e) {
    try {
      ctx.store.update(before);
      ctx.store.updateSpec(before);
    } catch (again) {
      log.warn(`${s.name}: restoring its row after a failed write: ${messageOf(again)}`);
    }
    throw e;
  }
}

/**
 * One change under the sandbox's lock, on a running sandbox: `change` gets
 * its row and recorded ports, and a `save` that writes the row (or puts it
 * back as it was); it returns the ports it published or took off, which the
 * event and the reply name.
 */
async function changePorts(
  ctx: DaemonContext,
  isExiting: (id: string) => boolean,
  ref: string,
  verb: "add" | "remove",
  change: (s: Sandbox, existing: PortRecord[], save: () => void) => Promise<PortRecord[]>,
): Promise<PortChangeReply> {
  const { id } = ctx.store.find(ref);
  return ctx.locks.run(id, async () => {
    const s = runningNow(ctx, id, isExiting, verb);
    const before = structuredClone(s);
    const changed = await change(s, s.runtime.ports ?? [], () => save(ctx, s, before));
    ctx.store.event(verb === "add" ? "port-add" : "port-rm", s, { ports: changed.map(formatPortLine).join(", ") });
    return { id: s.id, name: s.name, ports: changed.map(plain) };
  });
}

export function addPorts(ctx: DaemonContext, isExiting: (id: string) => boolean, ref: string, raw: string[]): Promise<PortChangeReply> {
  return changePorts(ctx, isExiting, ref, "add", async (s, existing, save) => {
    // The driver the backend names for -p; a sandbox run without -p has none recorded yet.
    const recorded = s.runtime.portDriver;
    const mode = modeOfRow(s);
    const choice: PortChoice = isPortDriverName(recorded)
      ? { driver: recorded }
      : ctx.backends.forMode(mode).ports(mode, { rootless: ctx.paths.rootless, plan: { newNet: !s.runtime.netOf } });
    if ("refuse" in choice) throw new BurrowError(choice.refuse, { kind: "bad-input" });
    // Each value as run reads it, with the driver's own refusals (IPv6 on slirp4netns's handler).
    const specs = checkAdditions(ctx.ports.parse(raw, choice), existing);
    s.runtime.portDriver = choice.driver;
    const added = await ctx.ports.add(s, specs);
    s.runtime.ports = [...existing, ...added];
    s.spec.ports = [...(s.spec.ports ?? []), ...specs.map(formatSpec)];
    try {
      save();
    } catch (e) {
      for (const err of await ctx.ports.remove(s, added)) log.warn(`rollback of port add on ${s.name}: ${err.message}`);
      throw e;
    }
    return added;
  });
}

export function removePorts(ctx: DaemonContext, isExiting: (id: string) => boolean, ref: string, raw: string[]): Promise<PortChangeReply> {
  return changePorts(ctx, isExiting, ref, "remove", async (s, existing, save) => {
    const removed = parseRemovals(raw, existing);
    for (const p of removed) {
      const why = ctx.ports.refuseRemoval(s, p);
      if (why) throw new BurrowError(why, { kind: "unsupported-option" });
    }
    const errors = await ctx.ports.remove(s, removed);
    // The row keeps every port while one failed: a second `port rm` of the
    // same values skips the ones already taken off (the builtin forwarder
    // and slirp4netns's list_hostfwd lookup find nothing left to remove).
    if (errors.length) throw new BurrowError(`cannot remove every port of ${s.name}: ${errors.map((e) => e.message).join("; ")}`, { kind: "error" });
    s.runtime.ports = existing.filter((p) => !removed.includes(p));
    s.spec.ports = specWithout(s.spec.ports ?? [], removed);
    save();
    return removed;
  });
}
