import { describe, expect, test } from "bun:test";
import { BurrowError } from "../../src/errors.ts";
import { inspectNetworkEntry, resultToBasicNetworkConfig } from "../../src/net/cni/inspect.ts";
import { type CniResult, type WireResult, normalizeResult, resultAsVersion, versionAtLeast, wireAsVersion } from "../../src/net/cni/result.ts";

// What the bridge plugin (after host-local) prints with cniVersion 0.4.0 ...
const RESULT_040 = {
  cniVersion: "0.4.0",
  interfaces: [
    { name: "burrow1", mac: "aa:bb:cc:00:00:01" },
    { name: "veth1234", mac: "aa:bb:cc:00:00:02" },
    { name: "eth0", mac: "92:d0:c6:0a:29:33", sandbox: "/run/netns/x" },
  ],
  ips: [{ version: "4", interface: 2, address: "10.89.1.5/24", gateway: "10.89.1.1" }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: {},
};
// ... and with 1.0.0: no "version" in ips.
const RESULT_100 = {
  cniVersion: "1.0.0",
  interfaces: RESULT_040.interfaces,
  ips: [
    { interface: 2, address: "10.89.1.5/24", gateway: "10.89.1.1" },
    { interface: 2, address: "fd00:0:0:2::5/64", gateway: "fd00:0:0:2::1" },
  ],
  routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
  dns: { nameservers: ["10.89.1.1"] },
};

describe("normalizing results", () => {
  test("0.4.0 keeps its version field", () => {
    const r = normalizeResult(RESULT_040);
    expect(r.ips).toEqual([{ version: "4", address: "10.89.1.5/24", gateway: "10.89.1.1", interface: 2 }]);
    expect(r.interfaces[2]).toEqual({ name: "eth0", mac: "92:d0:c6:0a:29:33", sandbox: "/run/netns/x" });
    expect(r.routes).toEqual([{ dst: "0.0.0.0/0" }]);
  });

  test("1.0.0 gets the family from the address", () => {
    const r = normalizeResult(RESULT_100);
    expect(r.ips.map((ip) => ip.version)).toEqual(["4", "6"]);
    expect(r.dns).toEqual({ nameservers: ["10.89.1.1"] });
  });

  test("unsupported versions and malformed results are named", () => {
    expect(() => normalizeResult({ ...RESULT_040, cniVersion: "0.2.0" })).toThrow(
      'CNI result has cniVersion "0.2.0": burrow supports 0.3.0, 0.3.1, 0.4.0, 1.0.0',
    );
    expect(() => normalizeResult({ cniVersion: "1.0.0", ips: [{ address: "10.1.1.1" }] })).toThrow(/ips\.0\.address: expected an address\/prefix/);
    expect(() => normalizeResult("nope")).toThrow(BurrowError);
  });

  test("converting between 0.4.0 and 1.0.0 (prevResult for a plugin of the other version)", () => {
    const as100 = resultAsVersion(normalizeResult(RESULT_040), "1.0.0");
    expect(as100.cniVersion).toBe("1.0.0");
    expect(as100.ips).toEqual([{ address: "10.89.1.5/24", gateway: "10.89.1.1", interface: 2 }]);
    const as040 = resultAsVersion(normalizeResult(RESULT_100), "0.4.0");
    expect(as040.ips).toEqual([
      { version: "4", address: "10.89.1.5/24", gateway: "10.89.1.1", interface: 2 },
      { version: "6", address: "fd00:0:0:2::5/64", gateway: "fd00:0:0:2::1", interface: 2 },
    ]);
    // Same version: passed on untouched, unknown keys included.
    const withExtra = { ...RESULT_040, extra: 1 } as unknown as WireResult;
    expect(wireAsVersion(withExtra, "0.4.0")).toBe(withExtra);
  });

  test("version comparison", () => {
    expect(versionAtLeast("0.4.0", "0.4.0")).toBe(true);
    expect(versionAtLeast("1.0.0", "0.4.0")).toBe(true);
    expect(versionAtLeast("0.3.1", "0.4.0")).toBe(false);
    expect(versionAtLeast("0.10.0", "0.4.0")).toBe(true);
  });
});

describe("resultToBasicNetworkConfig (podman v3)", () => {
  test("one IPv4 address: address, prefix, gateway, MAC from the interface index", () => {
    expect(resultToBasicNetworkConfig(normalizeResult(RESULT_040))).toEqual({
      EndpointID: "",
      Gateway: "10.89.1.1",
      IPAddress: "10.89.1.5",
      IPPrefixLen: 24,
      IPv6Gateway: "",
      GlobalIPv6Address: "",
      GlobalIPv6PrefixLen: 0,
      MacAddress: "92:d0:c6:0a:29:33",
    });
  });

  test("later IPv4 addresses are secondary, with their MACs as additional", () => {
    const r: CniResult = {
      cniVersion: "1.0.0",
      interfaces: [
        { name: "eth0", mac: "02:00:00:00:00:01" },
        { name: "eth1", mac: "02:00:00:00:00:02" },
      ],
      ips: [
        { version: "4", address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 0 },
        { version: "4", address: "10.2.0.2/16", gateway: "10.2.0.1", interface: 1 },
        // An out-of-range interface index gives no MAC (podman checks the bounds).
        { version: "4", address: "10.3.0.2/8", interface: 7 },
      ],
      routes: [],
      dns: {},
    };
    const c = resultToBasicNetworkConfig(r);
    expect(c.IPAddress).toBe("10.1.0.2");
    expect(c.MacAddress).toBe("02:00:00:00:00:01");
    expect(c.SecondaryIPAddresses).toEqual(["10.2.0.2/16", "10.3.0.2/8"]);
    expect(c.AdditionalMACAddresses).toEqual(["02:00:00:00:00:02"]);
  });

  test("IPv6-only: the first IPv6 address is global, without a MAC", () => {
    const r = normalizeResult({
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", mac: "02:00:00:00:00:01" }],
      ips: [{ interface: 0, address: "FD00:0:0:2:0:0:0:5/64", gateway: "fd00:0:0:2::1" }],
    });
    const c = resultToBasicNetworkConfig(r);
    expect(c.GlobalIPv6Address).toBe("fd00:0:0:2::5");
    expect(c.GlobalIPv6PrefixLen).toBe(64);
    expect(c.IPv6Gateway).toBe("fd00:0:0:2::1");
    expect(c.IPAddress).toBe("");
    expect(c.MacAddress).toBe("");
  });

  test("dual stack: as in podman v3, IPv6 after an IPv4 address is secondary", () => {
    const c = resultToBasicNetworkConfig(normalizeResult(RESULT_100));
    expect(c.IPAddress).toBe("10.89.1.5");
    expect(c.GlobalIPv6Address).toBe("");
    expect(c.SecondaryIPv6Addresses).toEqual(["fd00:0:0:2::5/64"]);
  });

  test("a missing gateway prints as an empty string", () => {
    const c = resultToBasicNetworkConfig(normalizeResult({ cniVersion: "0.4.0", ips: [{ version: "4", address: "10.1.0.2/24" }] }));
    expect(c.Gateway).toBe("");
    expect(c.MacAddress).toBe("");
  });

  test("NetworkSettings.Networks entry: NetworkID is the name, aliases first", () => {
    const entry = inspectNetworkEntry("web", normalizeResult(RESULT_040), ["db", "cache"]);
    expect(Object.keys(entry).slice(0, 4)).toEqual(["NetworkID", "Aliases", "EndpointID", "Gateway"]);
    expect(entry.NetworkID).toBe("web");
    expect(entry.Aliases).toEqual(["db", "cache"]);
    expect(inspectNetworkEntry("web", normalizeResult(RESULT_040)).Aliases).toBeUndefined();
  });
});
