// What a run with egress rules refuses (src/egress/conflicts.ts): the
// capabilities that change or bypass the sandbox's firewall, and the modes
// where burrow cannot enforce the rules. One line each, exit 125.
import { describe, expect, test } from "bun:test";
import { checkCapabilities, checkNetworkMode } from "../../src/egress/conflicts.ts";
import { parseEgressFlags } from "../../src/egress/policy.ts";
import { BurrowError, EXIT } from "../../src/errors.ts";
import { PODMAN_DEFAULT_CAPABILITIES } from "../../src/sandbox/capabilities.ts";

const policy = parseEgressFlags({ allowHost: ["pypi.org"], allowCidr: [], denyCidr: [], logOnly: false })!;
const refusal = (f: () => void): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BurrowError);
    expect((e as BurrowError).kind).toBe("bad-input");
    expect((e as BurrowError).exitCode).toBe(EXIT.burrow);
    expect((e as BurrowError).message).not.toContain("\n");
    return (e as BurrowError).message;
  }
  throw new Error("not refused");
};

describe("capabilities with a policy", () => {
  test("the default set is fine", () => {
    expect(() => checkCapabilities(policy, PODMAN_DEFAULT_CAPABILITIES, false)).not.toThrow();
  });

  test("NET_ADMIN, NET_RAW, SYS_ADMIN and --privileged are refused, naming the capability and the rule", () => {
    expect(refusal(() => checkCapabilities(policy, [...PODMAN_DEFAULT_CAPABILITIES, "CAP_NET_ADMIN"], false))).toStartWith(
      "--cap-add NET_ADMIN cannot be combined with --allow-host pypi.org",
    );
    expect(refusal(() => checkCapabilities(policy, ["CAP_NET_RAW", "CAP_SYS_ADMIN"], false))).toStartWith("--cap-add NET_RAW,SYS_ADMIN cannot");
    expect(refusal(() => checkCapabilities(policy, [], true))).toStartWith("--privileged cannot be combined with --allow-host pypi.org");
    const denyOnly = parseEgressFlags({ allowHost: [], allowCidr: [], denyCidr: ["private"], logOnly: false })!;
    expect(refusal(() => checkCapabilities(denyOnly, ["CAP_NET_ADMIN"], false))).toContain("--deny-cidr private");
  });
});

describe("network modes with a policy", () => {
  test("enforced on slirp4netns, pasta, bridges; accepted on none", () => {
    for (const kind of ["slirp4netns", "pasta", "cni", "netavark", "none"] as const) expect(() => checkNetworkMode(policy, kind)).not.toThrow();
  });

  test("refused on host, container:, ns: and pasta's namespace-side ports", () => {
    expect(refusal(() => checkNetworkMode(policy, "host"))).toStartWith("--allow-host pypi.org cannot be used with --network host");
    expect(refusal(() => checkNetworkMode(policy, "container"))).toContain("container:NAME");
    expect(refusal(() => checkNetworkMode(policy, "ns"))).toContain("ns:PATH");
    expect(refusal(() => checkNetworkMode(policy, "pasta", true))).toContain("--tcp-ns");
  });
});
