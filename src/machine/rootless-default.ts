// Which network `burrow run` uses rootless without --network: the helper
// chosen on merit (docs/benchmarks.md "Rootless backends": slirp4netns with
// burrow's forwarder was ahead on every row of the quiet Debian 12 run, and
// on memory everywhere), unless
// containers.conf default_rootless_network_cmd names the other, as in
// podman. When the chosen helper is not installed and the other one is, the
// other one is used, so that a plain `run` works on a machine with only
// pasta (podman 6 dropped slirp4netns) or only slirp4netns; `info` and
// `doctor` say so. Pure but for the helper lookup it is given.
import type { HelperConf, RootlessNetworkCmd } from "./containers-conf.ts";

/** burrow's own choice when containers.conf names none (docs/decisions.md). */
export const MERIT_DEFAULT: RootlessNetworkCmd = "slirp4netns";

export interface RootlessDefault {
  /** The network mode a plain `run` gets. */
  mode: RootlessNetworkCmd;
  /** Why, in one sentence (`info`). */
  why: string;
  /** Set when the preferred helper is missing and the other is used instead: what to say once. */
  fallback: string | null;
}

const PACKAGE: Record<RootlessNetworkCmd, string> = { pasta: "passt", slirp4netns: "slirp4netns" };

export function rootlessDefault(conf: Pick<HelperConf, "defaultRootlessNetworkCmd">, find: (name: string) => string | null): RootlessDefault {
  const configured = conf.defaultRootlessNetworkCmd;
  const preferred = configured ?? MERIT_DEFAULT;
  const other: RootlessNetworkCmd = preferred === "pasta" ? "slirp4netns" : "pasta";
  const because = configured
    ? `containers.conf default_rootless_network_cmd = "${configured}"`
    : `${preferred} with burrow's port forwarder measured ahead of ${other} (docs/benchmarks.md)`;
  if (find(preferred) || !find(other)) {
    // Neither installed: the preferred one, whose missing-helper error names its package.
    return { mode: preferred, why: `rootless: ${because}; the other user-mode stack and bridge networks are there with --network`, fallback: null };
  }
  const fallback = `${preferred} is not installed (${because}); plain \`burrow run\` uses ${other} instead: install the package ${PACKAGE[preferred]} to use ${preferred}`;
  return { mode: other, why: `rootless: ${fallback}`, fallback };
}

/** Which helper connects the shared rootless namespace of bridge networks, and why (`info`). */
export interface SharedNamespaceHelper {
  helper: RootlessNetworkCmd;
  why: string;
  /** Set when the preferred helper is missing and the other one serves: what to log once. */
  fallback: string | null;
}

/**
 * The helper of the shared rootless namespace that bridge networks live in
 * (src/net/cni/rootless-netns.ts). podman 5 reads the same key for it
 * (common/libnetwork/internal/rootlessnetns: default_rootless_network_cmd),
 * so it follows the same rule as a plain `run`: the configured or merit
 * choice, or the other helper when only that one is installed.
 */
export function sharedNamespaceHelper(conf: Pick<HelperConf, "defaultRootlessNetworkCmd">, find: (name: string) => string | null): SharedNamespaceHelper {
  const chosen = rootlessDefault(conf, find);
  if (chosen.fallback) {
    const said = chosen.fallback.replace("plain `burrow run` uses", "the bridge networks' rootless namespace uses");
    return { helper: chosen.mode, why: said, fallback: said };
  }
  const configured = conf.defaultRootlessNetworkCmd;
  const why = configured
    ? `containers.conf default_rootless_network_cmd = "${configured}", as podman 5 reads it for its rootless network namespace`
    : `burrow's rootless default (${chosen.mode}); containers.conf default_rootless_network_cmd chooses, as in podman 5`;
  return { helper: chosen.mode, why, fallback: null };
}
