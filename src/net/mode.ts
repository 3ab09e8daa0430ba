// `--network MODE` parsing. The mode picks one backend from the registry;
// backend-specific options (slirp4netns:cidr=...) are parsed by that backend.
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";

export type NetworkMode =
  | { kind: "none" }
  | { kind: "host" }
  | { kind: "slirp4netns"; options: string }
  | { kind: "pasta"; options: string }
  | { kind: "container"; ref: string }
  | { kind: "ns"; path: string }
  | { kind: "cni"; networks: string[] }
  | { kind: "netavark"; networks: string[] };

/** The backends that serve named networks (`--network NAME`, `bridge`): the registry picks one (src/net/registry.ts). */
export type NamedNetworkKind = "cni" | "netavark";

export type NetworkModeKind = NetworkMode["kind"];
export type NetworkModeOf<K extends NetworkModeKind> = Extract<NetworkMode, { kind: K }>;

export const MODE_HELP = "none, host, slirp4netns[:OPT=V,...], pasta[:OPT,...], bridge, container:NAME, ns:PATH, or network names (NAME[,NAME...])";

const NET_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Words that burrow never gives a network it creates, each with why: the
 * mode words `--network` reads before any network name (a network named
 * "host" could never be chosen: `--network host` is the host's namespace),
 * podman's mode words, and podman's default network. A conflist that
 * podman made under one of these names is still read (podman v3 names its
 * default network "podman"), just never created by burrow.
 */
export const RESERVED_NETWORK_NAMES: Readonly<Record<string, string>> = {
  none: "--network none is the mode with no network",
  host: "--network host is the host's network namespace",
  bridge: "--network bridge is the default bridge network",
  pasta: "--network pasta is the pasta mode",
  slirp4netns: "--network slirp4netns is the slirp4netns mode",
  container: "--network container:NAME joins another sandbox's network",
  ns: "--network ns:PATH joins a network namespace",
  private: "podman reads --network private as a mode",
  default: "podman reads --network default as a mode",
  podman: "it is podman's default network",
};

/** Why `name` may not be given to a new network, or null. */
export function reservedNetworkName(name: string): string | null {
  return Object.hasOwn(RESERVED_NETWORK_NAMES, name) ? RESERVED_NETWORK_NAMES[name]! : null;
}

/**
 * `named`: which backend serves named networks (the registry's choice, or
 * the one a sandbox's row was made with); CNI when not given.
 */
export function parseNetworkMode(raw: string, opts: { cniNetworks?: (name: string) => boolean; named?: NamedNetworkKind } = {}): NetworkMode {
  const named = opts.named ?? "cni";
  const [head, ...rest] = raw.split(":");
  const tail = rest.join(":");
  switch (head) {
    case "none":
    case "host":
      if (rest.length) break;
      return { kind: head };
    case "slirp4netns":
      return { kind: "slirp4netns", options: tail };
    case "pasta":
      return { kind: "pasta", options: tail };
    case "container":
      if (!tail) throw new BurrowError(`--network container: needs a sandbox name, as in container:NAME`, { kind: "bad-input" });
      return { kind: "container", ref: tail };
    case "ns":
      if (!tail.startsWith("/"))
        throw new BurrowError(`--network ns: needs an absolute path, as in ns:/run/netns/NAME (got ${quote(raw)})`, { kind: "bad-input" });
      return { kind: "ns", path: tail };
    case "bridge":
      if (rest.length) break;
      return { kind: named, networks: ["bridge"] };
  }
  const listed = raw.split(",");
  const single = listed.find((n) => n !== "bridge" && ["none", "host", "slirp4netns", "pasta", "container", "ns"].includes(n.split(":")[0]!));
  if (listed.length > 1 && single !== undefined)
    throw new BurrowError(`network mode ${quote(single)} cannot be combined with other networks in ${quote(raw)}: only bridge networks are listed together`, {
      kind: "bad-input",
    });
  if (!rest.length) {
    const names = listed;
    if (names.every((n) => NET_NAME.test(n)) && (!opts.cniNetworks || names.every(opts.cniNetworks))) {
      return { kind: named, networks: names };
    }
  }
  throw new BurrowError(`unknown network mode ${quote(raw)}: valid modes are ${MODE_HELP}`, { kind: "bad-input" });
}
