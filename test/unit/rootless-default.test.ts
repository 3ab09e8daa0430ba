import { describe, expect, test } from "bun:test";
import { parseConf } from "../../src/machine/containers-conf.ts";
import { MERIT_DEFAULT, rootlessDefault, sharedNamespaceHelper } from "../../src/machine/rootless-default.ts";
import { hostContainersInternal } from "../../src/dns/etc-content.ts";

const installed =
  (...names: string[]) =>
  (name: string) =>
    names.includes(name) ? `/usr/bin/${name}` : null;

describe("rootlessDefault", () => {
  test("both installed: the measured default, or containers.conf's", () => {
    expect(rootlessDefault({}, installed("pasta", "slirp4netns"))).toMatchObject({ mode: MERIT_DEFAULT, fallback: null });
    expect(rootlessDefault({ defaultRootlessNetworkCmd: "pasta" }, installed("pasta", "slirp4netns"))).toMatchObject({ mode: "pasta", fallback: null });
  });
  test("the preferred one missing, the other installed: the other, said once", () => {
    const r = rootlessDefault({}, installed("pasta"));
    expect(r.mode).toBe("pasta");
    expect(r.fallback).toContain("slirp4netns is not installed");
    expect(rootlessDefault({ defaultRootlessNetworkCmd: "pasta" }, installed("slirp4netns")).mode).toBe("slirp4netns");
  });
  test("neither installed: the preferred one (its error names the package)", () => {
    expect(rootlessDefault({ defaultRootlessNetworkCmd: "pasta" }, installed())).toMatchObject({ mode: "pasta", fallback: null });
  });
});

describe("sharedNamespaceHelper (the bridge networks' rootless namespace)", () => {
  test("the same rule as a plain run: containers.conf, else the default, else the installed one", () => {
    expect(sharedNamespaceHelper({ defaultRootlessNetworkCmd: "pasta" }, installed("pasta", "slirp4netns"))).toMatchObject({ helper: "pasta", fallback: null });
    expect(sharedNamespaceHelper({ defaultRootlessNetworkCmd: "pasta" }, installed("pasta", "slirp4netns")).why).toContain("default_rootless_network_cmd");
    expect(sharedNamespaceHelper({}, installed("pasta", "slirp4netns"))).toMatchObject({ helper: MERIT_DEFAULT, fallback: null });
    const fallback = sharedNamespaceHelper({ defaultRootlessNetworkCmd: "pasta" }, installed("slirp4netns"));
    expect(fallback.helper).toBe("slirp4netns");
    expect(fallback.fallback).toContain("pasta is not installed");
    expect(fallback.fallback).toContain("rootless namespace uses slirp4netns");
    expect(sharedNamespaceHelper({}, installed("pasta")).helper).toBe("pasta");
  });
});

describe("containers.conf keys of issue 15", () => {
  test("parsed", () => {
    expect(
      parseConf(
        '[network]\ndefault_rootless_network_cmd = "pasta"\npasta_options = ["--mtu", "1400"]\n[containers]\nhost_containers_internal_ip = "10.1.2.3"\n',
        "f",
      ),
    ).toEqual({ defaultRootlessNetworkCmd: "pasta", pastaOptions: ["--mtu", "1400"], hostContainersInternalIp: "10.1.2.3" });
    expect(parseConf('[containers]\nhost_containers_internal_ip = ""\n', "f")).toEqual({});
  });
  test("refused with the key named", () => {
    expect(() => parseConf('[network]\ndefault_rootless_network_cmd = "vpnkit"\n', "f")).toThrow(
      /f: network.default_rootless_network_cmd: accepted values are "pasta" and "slirp4netns"/,
    );
    expect(() => parseConf('[containers]\nhost_containers_internal_ip = "x"\n', "f")).toThrow(/host_containers_internal_ip: accepted values are an IPv4/);
  });
});

describe("hostContainersInternal (podman 5.3)", () => {
  const host = () => "192.0.2.2";
  test("containers.conf, then the network's, then the host's", () => {
    expect(hostContainersInternal("10.9.9.9", { hostContainersInternal: "169.254.1.2" }, host)).toBe("10.9.9.9");
    expect(hostContainersInternal("none", { hostContainersInternal: "169.254.1.2" }, host)).toBeNull();
    expect(hostContainersInternal(undefined, { hostContainersInternal: "169.254.1.2" }, host)).toBe("169.254.1.2");
    expect(hostContainersInternal(undefined, {}, host)).toBe("192.0.2.2");
  });
  test("bridges behind pasta without a mapped address: the host's first address that is not also the namespace's", () => {
    const hostOutside = (exclude: readonly string[]) => ["192.0.2.2", "198.51.100.7"].find((a) => !exclude.includes(a)) ?? null;
    expect(hostContainersInternal(undefined, { hostAddressesInside: ["192.0.2.2"] }, hostOutside)).toBe("198.51.100.7");
    expect(hostContainersInternal(undefined, { hostAddressesInside: ["192.0.2.2", "198.51.100.7"] }, hostOutside)).toBeNull();
    expect(hostContainersInternal("10.9.9.9", { hostAddressesInside: ["192.0.2.2", "198.51.100.7"] }, hostOutside)).toBe("10.9.9.9");
  });
});
