// What an accelerated sandbox may reach through a host socket: the same as
// without --accelerate, no more (docs/accelerate.md "Threat model"). Pure:
// the daemon fills a Scope from the sandbox's row; the supervisor asks
// `decide` with burrow's own copy of the destination and the trapped task's
// network namespace. With an egress policy (issue 18), a destination that
// would get a host socket is judged by the policy's one `verdict` too: the
// sandbox's nftables ruleset never sees a host socket's packets.
import { type CompiledPolicy, type Learned, unmapped, verdict } from "../egress/policy.ts";
import type { Refusal } from "../egress/refusals.ts";
import { type IpAddress, ipToString, parseCidr, parseIp, type Subnet, subnetContains } from "../net/cni/ip.ts";
import type { Destination, Verdict } from "./connect.ts";

export interface Scope {
  /** Inode of the sandbox's network namespace: a task in any other (its own `unshare -n`) is never accelerated. */
  netnsInode: number;
  /** Destinations that stay inside the sandbox's own namespace: its addresses, its networks' subnets, the helper's internal range. */
  inside: string[];
  /** slirp4netns's 10.0.2.2 (pasta: its --map-host-loopback address): the host's loopback, reachable only with allow_host_loopback. */
  hostAlias?: string[];
  allowHostLoopback: boolean;
  /** The sandbox's own addresses: a bind to one of them (or to the wildcard) on a published port gets the host's listening socket. */
  own?: string[];
}

/** Never through a host socket: loopback, unspecified, link-local (pasta's and the cloud's 169.254/16), multicast. */
const LOCAL_ONLY = ["127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32", "::1/128", "::/128", "fe80::/10", "ff00::/8"];

const subnets = (cidrs: string[]): Subnet[] => cidrs.map((c) => parseCidr(c)?.subnet).filter((s): s is Subnet => !!s);
const LOCAL_SUBNETS = subnets(LOCAL_ONLY);

function within(list: Subnet[], ip: IpAddress): boolean {
  return list.some((s) => subnetContains(s, ip));
}

/** `inside` as subnets: a bare address is its own /32 or /128. */
export function insideSubnets(scope: Scope): Subnet[] {
  return subnets(scope.inside.map((a) => (a.includes("/") ? a : `${a}/${a.includes(":") ? 128 : 32}`)));
}

/** A sandbox's egress policy as `decide` applies it (docs/egress.md "--accelerate"). */
export interface ScopeEgress {
  policy: CompiledPolicy;
  /** The allow rules an address is learned for at the call's time (the supervisor's LearnedAddresses); none when absent. */
  learned?: Learned;
}

/** Why a refusal that a learned address could lift is left to the ruleset (docs/egress.md "--accelerate"). */
export const LEARNABLE = "a host rule may allow it: the ruleset judges";

/** Every host rule as if it had learned the address: what learning could allow at most. */
const everyHostRule = (policy: CompiledPolicy): Learned => {
  const all = policy.hosts.map((h) => h.allowIndex);
  return () => all;
};

/**
 * The policy's word on a host socket to `host` for a TCP connect to `dest`
 * (the address as the sandbox names it: the ruleset would have judged that).
 * Refused: the supervisor answers ECONNREFUSED itself; under
 * --egress-log-only the host socket is made and the refusal only reported.
 * Not allowed, but an address learned for a host rule would allow it: the
 * call runs inside, where the ruleset judges with the sets the resolver
 * filled before its answer (the supervisor's copy may lag behind them).
 */
function judged(egress: ScopeEgress | undefined, ip: IpAddress, dest: Destination, host: Destination): Verdict {
  if (!egress) return { host };
  const destination = ipToString(unmapped(ip));
  const asked = { ip: destination, port: dest.port, protocol: "tcp" } as const;
  const v = verdict(egress.policy, asked, egress.learned);
  if (v.allow) return { host };
  // Learning could still allow it: the resolver puts an address in the
  // sandbox's sets before its answer, but the supervisor hears of it through
  // the main thread, perhaps after the program's connect. The ruleset has it.
  if (egress.policy.hosts.length > 0 && verdict(egress.policy, asked, everyHostRule(egress.policy)).allow) return { continue: LEARNABLE };
  const refusal: Refusal = { destination, port: dest.port, protocol: "tcp", rule: v.rule?.text ?? null, reason: v.reason };
  return egress.policy.logOnly ? { host, wouldRefuse: refusal } : { refuse: refusal };
}

/**
 * The verdict for a connect to `dest` by a task whose network namespace has
 * inode `taskNetns`. A host socket only for a destination outside everything
 * the sandbox's own namespace serves, and that the sandbox's egress policy
 * (when it has one) lets out; the host alias maps to the host's loopback
 * only when the sandbox was given it. Whatever stays inside (CONTINUE) meets
 * the sandbox's own ruleset there.
 */
export function decide(scope: Scope, dest: Destination, taskNetns: number | null, inside: Subnet[] = insideSubnets(scope), egress?: ScopeEgress): Verdict {
  if (taskNetns !== scope.netnsInode) return { continue: "another network namespace" };
  const parsed = parseIp(dest.ip);
  if (!parsed) return { continue: "not an address" };
  const ip = unmapped(parsed);
  if (scope.hostAlias?.includes(ipToString(ip))) {
    if (!scope.allowHostLoopback) return { continue: "host loopback not allowed" };
    return judged(egress, ip, dest, { ip: ip.family === 4 ? "127.0.0.1" : "::1", port: dest.port });
  }
  if (within(LOCAL_SUBNETS, ip)) return { continue: "local address" };
  if (within(inside, ip)) return { continue: "inside the sandbox's networks" };
  return judged(egress, ip, dest, dest);
}

/** A trapped bind the supervisor may answer with a published port's host socket: the container port and the socket's family. */
export type BindVerdict = { port: number; family: 4 | 6 } | { continue: string };

/**
 * The verdict for a bind of a `family` TCP socket to `dest` (burrow's copy)
 * by a task in network namespace `taskNetns`: only the wildcard of the
 * socket's own family or one of the sandbox's own addresses, on a real
 * port. A bind to loopback stays inside: such a server must stay
 * unreachable from the host.
 */
export function decideBind(scope: Scope, dest: Destination, family: 4 | 6, taskNetns: number | null): BindVerdict {
  if (taskNetns !== scope.netnsInode) return { continue: "another network namespace" };
  if (dest.port === 0) return { continue: "no port asked for" };
  const ip = parseIp(dest.ip);
  if (!ip || ip.family !== family) return { continue: "an address of the other family" };
  const wildcard = family === 4 ? dest.ip === "0.0.0.0" : dest.ip === "::";
  if (!wildcard && !(scope.own ?? []).includes(dest.ip)) return { continue: "not the wildcard or the sandbox's own address" };
  return { port: dest.port, family };
}
