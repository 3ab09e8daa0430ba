// What a `run` with egress rules must refuse before anything is made
// (docs/egress.md "Enforcement"): capabilities that would let the command
// change its own firewall or send below it, and network modes where burrow
// cannot enforce the rules. Pure: the daemon's create (not wired yet) asks
// these with the resolved capability set and the parsed mode, and throws
// their one-line refusal with exit 125.
import { BurrowError } from "../errors.ts";
import { type EgressPolicy, ruleText } from "./policy.ts";

/**
 * NET_ADMIN changes the sandbox's nftables table and routes; NET_RAW opens
 * packet sockets, which send below netfilter's IP hooks; SYS_ADMIN takes
 * the command out of its Landlock domain (docs/threat-model.md).
 */
export const CAPABILITIES_REFUSED_WITH_EGRESS = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"] as const;

/** The first rule's flag, to name in a refusal ("--allow-host pypi.org"). */
function firstFlag(policy: EgressPolicy): string {
  const allow = policy.allow[0];
  if (allow) return ruleText(allow, "allow");
  const deny = policy.deny[0];
  return deny ? ruleText(deny, "deny") : "--egress-log-only";
}

/**
 * Refuses the capability set a command with a policy would get. `capabilities`
 * is the resolved set (src/sandbox/capabilities.ts: --cap-add ALL already
 * expanded); `privileged` is --privileged.
 */
export function checkCapabilities(policy: EgressPolicy, capabilities: readonly string[], privileged: boolean): void {
  const flag = firstFlag(policy);
  if (privileged)
    throw new BurrowError(`--privileged cannot be combined with ${flag}: a privileged command could change its own firewall; drop one of them`, {
      kind: "bad-input",
    });
  const held = CAPABILITIES_REFUSED_WITH_EGRESS.filter((c) => capabilities.includes(c));
  if (held.length > 0)
    throw new BurrowError(
      `--cap-add ${held.map((c) => c.slice(4)).join(",")} cannot be combined with ${flag}: with ${held.join(", ")} the command could change or bypass its own firewall; drop one of them`,
      { kind: "bad-input" },
    );
}

/** The network modes of src/net/mode.ts, by kind (named here so src/egress imports nothing of src/net's modes). */
export type ModeKind = "none" | "host" | "slirp4netns" | "pasta" | "container" | "ns" | "cni" | "netavark";

/**
 * Refuses a mode where the rules cannot hold. `pastaNamespacePorts`: pasta
 * was given -T/--tcp-ns or -U/--udp-ns other than `none` (pasta then splices
 * the sandbox's loopback ports to the host's, beside every netfilter hook).
 */
export function checkNetworkMode(policy: EgressPolicy, kind: ModeKind, pastaNamespacePorts = false): void {
  const flag = firstFlag(policy);
  const refuse = (why: string): never => {
    throw new BurrowError(`${flag} cannot be used with ${why}`, { kind: "bad-input" });
  };
  if (kind === "host") refuse("--network host: it shares the host's network, which burrow does not firewall; use the default network or a bridge");
  if (kind === "container") refuse("--network container:NAME: the rules belong to the namespace's owner; give them to NAME's run (this sandbox shares them)");
  if (kind === "ns") refuse("--network ns:PATH: burrow does not own that namespace");
  if (kind === "pasta" && pastaNamespacePorts)
    refuse("pasta's -T/--tcp-ns or -U/--udp-ns: pasta forwards those loopback ports to the host outside the sandbox's firewall; leave them at none");
}
