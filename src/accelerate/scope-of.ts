// A sandbox's --accelerate scope (src/accelerate/scope.ts), from its row: what
// stays inside its own network namespace for each mode, and whether the host
// alias means the host's loopback. Modes without a path out of their own
// (none, host, container:, ns:) are refused at create.
import { BurrowError } from "../errors.ts";
import type { NetworkMode } from "../net/mode.ts";
import { quote } from "../quote.ts";
import { modeOfRow } from "../net/registry.ts";
import { parseSlirp4netnsOptions, slirp4netnsAddresses } from "../net/slirp4netns/options.ts";
import type { Sandbox } from "../state/sandboxes.ts";
import type { Scope } from "./scope.ts";

/**
 * The private ranges. A bridge network's own subnet is one of them (podman's
 * and burrow's defaults and every `network create` without --subnet), and the
 * rootless bridges' way out (slirp4netns's 10.0.2.0/24 in the shared
 * namespace) too, so for bridge sandboxes they all stay on the sandbox's own
 * path: slower to a LAN host, never wrong.
 */
const PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"];

/** The modes --accelerate serves: the ones whose traffic leaves through a helper or a bridge. */
export function refuseAcceleration(mode: NetworkMode, raw: string): void {
  if (mode.kind === "slirp4netns" || mode.kind === "pasta" || mode.kind === "cni" || mode.kind === "netavark") return;
  throw new BurrowError(
    `--accelerate works with --network slirp4netns, pasta or a bridge network, not --network ${quote(raw)}: its sockets are the host's already or have no way out`,
    { kind: "bad-input" },
  );
}

export function accelerationScope(s: Pick<Sandbox, "spec" | "runtime">, netnsInode: number): Scope {
  const mode = modeOfRow(s);
  const own = s.runtime.address ? [s.runtime.address] : [];
  const ownAll = [...own, ...(s.runtime.address6 ? [s.runtime.address6] : [])];
  if (mode.kind === "slirp4netns") {
    const o = parseSlirp4netnsOptions(mode.options ? mode.options.split(",") : []);
    const a = slirp4netnsAddresses(o);
    return {
      netnsInode,
      inside: [a.cidr, ...(a.ipv6 ? [a.ipv6.cidr] : []), ...own],
      hostAlias: [a.gateway, ...(a.ipv6 ? [a.ipv6.gateway] : [])],
      allowHostLoopback: o.allowHostLoopback,
      own: ownAll,
    };
  }
  // pasta copies the host's addresses into the sandbox: those stay inside,
  // and its link-local host addresses (169.254.1.x) stay pasta's.
  if (mode.kind === "pasta") return { netnsInode, inside: own, allowHostLoopback: false, own: ownAll };
  return { netnsInode, inside: [...PRIVATE, ...own], allowHostLoopback: false, own: ownAll };
}
