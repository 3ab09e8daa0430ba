// Egress policy's share of a sandbox's lifecycle (docs/egress.md, issue 18):
// what `run` refuses before anything is made, and, for a sandbox with a
// policy, the steps between its network's setup and its command's start:
// the resolver's and netfilter's sockets made in its netns by the
// connector thread, the nftables ruleset loaded there, and the sockets
// handed to the resolver service (src/egress/service.ts). Release detaches;
// the table goes with the netns. A new daemon after a crash makes the
// sockets again and keeps the ruleset the kernel still holds. Daemon main
// thread (it never enters a sandbox's netns itself: the connector thread
// and nsenter do).
import { readFileSync } from "node:fs";
import { isIP } from "../ip-syntax.ts";
import { networkInterfaces } from "node:os";
import * as v from "valibot";
import { buildResolvConf, parseResolvConf } from "../dns/resolvconf.ts";
import type { DnsView } from "../dns/etc-content.ts";
import { checkCapabilities, checkNetworkMode } from "../egress/conflicts.ts";
import { hasRuleset, loadRuleset, readLearned } from "../egress/nft-netlink.ts";
import type { AcceleratorEgress, LearnedEntry } from "../accelerate/protocol.ts";
import { learnedSetRule } from "../egress/service.ts";
import { compilePolicy, EGRESS_RESOLVER, EgressPolicy, type PolicyContext } from "../egress/policy.ts";
import type { RefusalEvent } from "../egress/refusals.ts";
import type { EgressAttach, EgressRefusalEvent } from "../egress/service.ts";
import { BurrowError, messageOf, type Rollback } from "../errors.ts";
import { log } from "../log.ts";
import type { NetworkMode } from "../net/mode.ts";
import { daemonConnector, type EgressFds } from "../ports/connector.ts";
import type { CreateRequest } from "../protocol.ts";
import { close } from "../sys/ns.ts";
import type { EgressRuntime, Sandbox } from "../state/sandboxes.ts";
import { type DaemonContext, sandboxLabel } from "./context.ts";

/** The policy a sandbox's spec keeps, checked again (the state database is a file: nothing in it is trusted unchecked). */
export function egressPolicyOf(s: Pick<Sandbox, "spec" | "name">): EgressPolicy | null {
  if (s.spec.egress === undefined || s.spec.egress === null) return null;
  const parsed = v.safeParse(EgressPolicy, s.spec.egress);
  if (!parsed.success) throw new BurrowError(`sandbox ${s.name}: its recorded egress policy is not valid: ${parsed.issues[0].message}`);
  return parsed.output;
}

/** What resolv.conf lists: burrow's resolver alone for a sandbox with a policy (search and options as without). */
export function resolvConfServers(spec: Pick<CreateRequest, "dns" | "egress">): string[] {
  return spec.egress ? [EGRESS_RESOLVER] : spec.dns;
}

/**
 * Before anything is made: refuses a policy the sandbox could escape
 * (capabilities, modes: src/egress/conflicts.ts), or that this machine
 * cannot enforce, in one line (exit 125). `splicesLoopback`: the mode's
 * helper carries loopback ports past netfilter (the backend says so).
 */
export function checkEgressRequest(
  req: CreateRequest,
  caps: readonly string[],
  mode: NetworkMode,
  splicesLoopback: boolean,
  joined?: Pick<Sandbox, "spec" | "name">,
): void {
  // --network container:NAME of a sandbox with rules: the joiner shares its netns and its table, so it may not hold what could change them.
  const shared = joined && egressPolicyOf(joined);
  if (shared) {
    try {
      checkCapabilities(shared, caps, req.privileged ?? false);
    } catch (e) {
      throw new BurrowError(`sandbox ${joined.name}, whose network this joins, has egress rules: ${messageOf(e)}`, { kind: "bad-input" });
    }
  }
  const policy = req.egress;
  if (!policy) return;
  checkCapabilities(policy, caps, req.privileged ?? false);
  checkNetworkMode(policy, mode.kind, splicesLoopback);
  // The --dns servers are the resolver's upstreams now, not resolv.conf's: checked as resolv.conf would have.
  if (req.dns.length) buildResolvConf({ hostContent: "", dns: req.dns });
}

/**
 * The resolver's upstreams: the --dns servers, else the nameservers of the
 * host's /etc/resolv.conf as the daemon (in the host's netns) sees it,
 * systemd-resolved's 127.0.0.53 stub included (docs/egress.md "Upstream").
 */
export function egressUpstreams(dns: readonly string[], hostResolvConf = readOrEmpty("/etc/resolv.conf")): string[] {
  const servers = dns.length ? dns : parseResolvConf(hostResolvConf).nameservers;
  return [...new Set(servers.filter((ns) => isIP(ns) !== 0))];
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** What the network setup tells about the host as this sandbox reaches it. */
export interface EgressNetwork extends DnsView {
  /** inspect's NetworkSettings.Networks of a bridge setup: every network's gateways. */
  networks?: Record<string, object>;
}

/**
 * The `host` preset and the sandbox's own addresses for this start
 * (policy.ts PolicyContext): the host's interface addresses (the daemon is in
 * the host's netns), the address the network maps to the host (slirp4netns's
 * gateway 10.0.2.2, pasta's mapped address) and every bridge gateway.
 * `missing` says what could not be known.
 */
export function egressContext(
  s: Pick<Sandbox, "spec" | "runtime">,
  net: EgressNetwork | undefined,
  interfaces: () => string[] = hostInterfaceAddresses,
): EgressRuntime {
  const missing: string[] = [];
  const host = new Set<string>(interfaces());
  for (const a of [net?.gateway, net?.hostContainersInternal]) if (a && isIP(a)) host.add(a);
  for (const n of Object.values(net?.networks ?? {}) as Array<Record<string, unknown>>)
    for (const key of ["Gateway", "IPv6Gateway"]) {
      const a = n[key];
      if (typeof a === "string" && isIP(a)) host.add(a);
    }
  for (const a of net?.hostAddressesInside ?? []) host.delete(a); // the host's addresses copied into pasta's namespace are not the host from there
  if (net && !net.gateway && !net.hostContainersInternal && !net.networks)
    missing.push("the network gives no address for the host: the host preset holds its interface addresses only");
  const own = [s.runtime.address, s.runtime.address6].filter((a): a is string => !!a && isIP(a) !== 0);
  const upstreams = egressUpstreams(s.spec.dns);
  if (!upstreams.length) missing.push("no upstream resolver: no --dns and the host's /etc/resolv.conf lists no nameserver");
  return { hostAddresses: [...host], sandboxAddresses: own, upstreams, ...(missing.length ? { missing } : {}) };
}

/** The host's own interface addresses, loopback left out (the sandbox's loopback is its own). */
function hostInterfaceAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i): i is NonNullable<typeof i> => !!i && !i.internal)
    .map((i) => i.address);
}

const policyContextOf = (e: EgressRuntime): PolicyContext => ({ hostAddresses: e.hostAddresses, sandboxAddresses: e.sandboxAddresses });

function closeFds(fds: EgressFds): void {
  for (const fd of Object.values(fds)) close(fd);
}

function attachOf(s: Sandbox, policy: EgressPolicy, e: EgressRuntime, fds: EgressFds): EgressAttach {
  return { id: s.id, name: s.name, policy, context: policyContextOf(e), upstreams: e.upstreams, fds };
}

/** A sandbox's egress sockets, asked of the connector before they are needed; `taken` once startEgress hands them on. */
export interface EarlySockets {
  /** The sandbox's policy, checked once. */
  policy: EgressPolicy;
  fds: Promise<EgressFds>;
  taken: boolean;
  /** The ruleset is in the netns already (loaded as soon as the sockets came: it did not need the network's addresses). */
  loaded: boolean;
}

/** Whether the ruleset needs what only the network's setup tells: the `host` preset's addresses (the resolver's rebinding check is not the ruleset's). */
const needsNetwork = (policy: EgressPolicy) => [...policy.allow, ...policy.deny].some((r) => r.kind === "preset" && r.preset === "host");

/**
 * In a create, right after the namespaces: asks the connector for the
 * sandbox's egress sockets at once (they need only its netns), so they are
 * made while the network is set up. The undo closes them unless
 * startEgress took them. undefined without a policy.
 */
export function prepareEgressSockets(s: Sandbox, undo: Rollback): EarlySockets | undefined {
  const policy = egressPolicyOf(s);
  if (!policy || !s.runtime.pins) return undefined;
  const early: EarlySockets = { policy, fds: daemonConnector().egressSockets(s.runtime.pins.net, EGRESS_RESOLVER), taken: false, loaded: false };
  // Without the host preset the ruleset is loaded as soon as the sockets come, while the network is still being set up
  // (setup configures over netlink; IPv6's link traffic passes the ruleset anyway).
  if (!needsNetwork(policy))
    early.fds = early.fds.then((fds) => {
      try {
        loadRuleset(fds.nft, compilePolicy(policy, { hostAddresses: [] }), true);
      } catch (err) {
        closeFds(fds); // the promise rejects: nobody else gets them to close
        throw err;
      }
      early.loaded = true;
      return fds;
    });
  early.fds.catch(() => {}); // awaited by startEgress, which reports a failure
  undo.push("egress sockets", async () => {
    if (early.taken) return;
    const fds = await early.fds.catch(() => null);
    if (fds) closeFds(fds);
  });
  return early;
}

/**
 * In a create, after the network (and before the command starts): the
 * sockets prepareEgressSockets asked for, the ruleset (unless it went in
 * with them), the resolver. Each step's undo goes on `undo`. Records what it resolved
 * in `s.runtime.egress` (a new daemon needs it).
 */
export async function startEgress(ctx: DaemonContext, s: Sandbox, net: EgressNetwork | undefined, undo: Rollback, sockets: EarlySockets): Promise<void> {
  const { policy } = sockets;
  const e = egressContext(s, net);
  for (const m of e.missing ?? []) log.debug(`egress of ${sandboxLabel(s)}: ${m}`);
  s.runtime.egress = e;
  let fds: EgressFds;
  try {
    fds = await sockets.fds;
  } catch (err) {
    throw new BurrowError(`cannot set up the egress rules in the sandbox's network namespace: ${messageOf(err)}`, { cause: err });
  }
  if (!sockets.loaded) loadRuleset(fds.nft, compilePolicy(policy, policyContextOf(e)), true);
  // The service owns the fds from the call on, also when the attach fails (it closes them then).
  sockets.taken = true;
  undo.push("egress resolver", () => ctx.egress.detach(s.id));
  // Not awaited (about 1 ms of every start): the sockets are bound already, so
  // the command's first queries wait in them until the Worker serves them
  // (adding a socket to epoll reports what is queued). A failure leaves the
  // sandbox without DNS, which fails closed, and is logged; a detach first
  // (a rollback, a quick --rm) is no failure.
  ctx.egress.attach(attachOf(s, policy, e, fds)).catch((err) => {
    if (messageOf(err) !== "detached") log.warn(`egress of ${sandboxLabel(s)}: its resolver is not served: ${messageOf(err)}`);
  });
}

/**
 * A new daemon, for a running sandbox with a policy (recovery's restore):
 * new sockets, the ruleset kept where the kernel still holds it (its learned
 * sets with it, read back for the resolver and --accelerate's supervisor),
 * loaded again where not, and the resolver attached again. Returns the
 * addresses read back.
 */
export async function recoverEgress(ctx: DaemonContext, s: Sandbox): Promise<LearnedEntry[]> {
  const policy = egressPolicyOf(s);
  if (!policy || !s.runtime.pins) return [];
  const netns = s.runtime.pins.net;
  // A row made before it was recorded (none yet) or damaged: resolved again now.
  if (!s.runtime.egress) {
    s.runtime.egress = egressContext(s, undefined);
    ctx.store.update(s);
  }
  const e = s.runtime.egress;
  const compiled = compilePolicy(policy, policyContextOf(e));
  const fds = await daemonConnector().egressSockets(netns, EGRESS_RESOLVER);
  let learned: ReturnType<typeof readLearned> = [];
  try {
    if (hasRuleset(fds.nft)) learned = readLearned(fds.nft, compiled);
    else {
      log.warn(`egress of ${sandboxLabel(s)}: its rules were gone from its network namespace; loaded again`);
      loadRuleset(fds.nft, compiled);
    }
  } catch (err) {
    closeFds(fds);
    throw err;
  }
  // The service owns the fds from the call on (it closes them when the attach fails).
  try {
    await ctx.egress.attach({ ...attachOf(s, policy, e, fds), learned });
  } catch (err) {
    ctx.egress.detach(s.id);
    throw err;
  }
  const now = Date.now();
  return learned.flatMap((l) => {
    const allowIndex = learnedSetRule(l.set);
    return allowIndex === null ? [] : [{ allowIndex, address: l.address, expiresAt: now + l.expiresInMs }];
  });
}

/** What --accelerate's supervisor applies to a sandbox's connects (undefined: no policy, or none resolved yet). */
export function acceleratorEgress(s: Pick<Sandbox, "spec" | "name" | "runtime">, learned?: LearnedEntry[]): AcceleratorEgress | undefined {
  const policy = egressPolicyOf(s);
  if (!policy) return undefined;
  // A row without the recorded context (damaged, or older) is judged with one resolved now: never unjudged.
  const e = s.runtime.egress ?? egressContext(s, undefined);
  return { policy, context: policyContextOf(e), ...(learned?.length ? { learned } : {}) };
}

/** Release: the resolver stops serving the sandbox and closes its sockets; the table goes with the netns. Idempotent. */
export function stopEgress(ctx: DaemonContext, s: Pick<Sandbox, "id" | "spec">): void {
  if (s.spec.egress) ctx.egress.detach(s.id);
}

/** A folded refusal as `burrow events` shows it (docs/egress.md "Events and visibility"); its status is the service's (refusals.ts refusalStatus). */
export function refusalEventAttributes(event: RefusalEvent): Record<string, unknown> {
  return {
    destination: event.destination,
    ...(event.port !== undefined ? { port: event.port } : {}),
    protocol: event.protocol,
    rule: event.rule ?? "",
    reason: event.reason,
    ...(event.name !== undefined ? { name: event.name } : {}),
    count: event.count,
  };
}

/** The resolver service's onRefusal: one event per folded refusal, on the sandbox. */
export function recordRefusal(ctx: Pick<DaemonContext, "store">, id: string, event: EgressRefusalEvent): void {
  let s: Sandbox;
  try {
    s = ctx.store.find(id);
  } catch {
    return; // removed meanwhile
  }
  ctx.store.event(event.status, s, refusalEventAttributes(event));
}
