import { describe, expect, test } from "bun:test";
import { parseProcIpv6Route, parseProcRoute } from "../../src/net/cni/host.ts";
import { canonicalSubnet, firstHost, formatIp, lastHost, parseCidr, parseIp, subnetContains, subnetToString, subnetsOverlap } from "../../src/net/cni/ip.ts";
import { pickFreeBridgeName, pickFreeSubnet } from "../../src/net/cni/subnet.ts";

const sub = (s: string) => parseCidr(s)!.subnet;

describe("addresses", () => {
  test("IPv4 round trip", () => {
    const ip = parseIp("10.89.0.1")!;
    expect(ip.family).toBe(4);
    expect(formatIp(4, ip.value)).toBe("10.89.0.1");
    expect(parseIp("10.89.0.256")).toBeNull();
    expect(parseIp("nonsense")).toBeNull();
  });

  test("IPv6 prints like Go's net.IP.String()", () => {
    const cases: Array<[string, string]> = [
      ["fd00:0:0:1::", "fd00:0:0:1::"],
      ["FD00:0000:0000:0001:0000:0000:0000:0001", "fd00:0:0:1::1"],
      ["::", "::"],
      ["::1", "::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"],
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ];
    for (const [input, want] of cases) {
      const ip = parseIp(input)!;
      expect(ip.family).toBe(6);
      expect(formatIp(6, ip.value)).toBe(want);
    }
  });

  test("CIDRs: host bits allowed, canonical subnet", () => {
    const p = parseCidr("10.89.3.7/24")!;
    expect(formatIp(4, p.address.value)).toBe("10.89.3.7");
    expect(subnetToString(p.subnet)).toBe("10.89.3.0/24");
    expect(canonicalSubnet("fd00:0:0:5::9/64")).toBe("fd00:0:0:5::/64");
    expect(parseCidr("10.0.0.0/33")).toBeNull();
    expect(parseCidr("10.0.0.0")).toBeNull();
    expect(parseCidr("10.0.0.0/x")).toBeNull();
  });

  test("containment and overlap", () => {
    expect(subnetContains(sub("10.89.0.0/24"), parseIp("10.89.0.200")!)).toBe(true);
    expect(subnetContains(sub("10.89.0.0/24"), parseIp("10.89.1.1")!)).toBe(false);
    expect(subnetContains(sub("10.89.0.0/24"), parseIp("fd00::1")!)).toBe(false);
    expect(subnetsOverlap(sub("10.88.0.0/16"), sub("10.88.5.0/24"))).toBe(true);
    expect(subnetsOverlap(sub("10.88.5.0/24"), sub("10.88.0.0/16"))).toBe(true);
    expect(subnetsOverlap(sub("10.89.0.0/24"), sub("10.89.1.0/24"))).toBe(false);
    expect(subnetsOverlap(sub("10.0.0.0/8"), sub("fd00::/8"))).toBe(false);
  });

  test("first and last host (podman's FirstIPInSubnet / LastIPInSubnet)", () => {
    expect(formatIp(4, firstHost(sub("10.89.2.128/25")).value)).toBe("10.89.2.129");
    expect(formatIp(4, lastHost(sub("10.89.2.128/25")).value)).toBe("10.89.2.254");
    expect(formatIp(6, firstHost(sub("fd00:0:0:1::/64")).value)).toBe("fd00:0:0:1::1");
  });
});

describe("free subnets", () => {
  test("IPv4 starts at 10.89.0.0/24 and skips what is used", () => {
    expect(subnetToString(pickFreeSubnet(4, [])!)).toBe("10.89.0.0/24");
    expect(subnetToString(pickFreeSubnet(4, [sub("10.89.0.0/24"), sub("10.89.1.0/24")])!)).toBe("10.89.2.0/24");
    // A wider used network blocks every /24 inside it.
    expect(subnetToString(pickFreeSubnet(4, [sub("10.89.0.0/16")])!)).toBe("10.90.0.0/24");
  });

  test("the pool ends at 10.255.255.0/24 and never falls back to podman's 10.88.0.0/16", () => {
    const all = Array.from({ length: 256 }, (_, i) => sub(`10.${89 + (i % 167)}.0.0/16`));
    const picked = pickFreeSubnet(4, all);
    expect(picked).toBeNull();
  });

  test("IPv6 never slirp4netns's fd00::/64", () => {
    expect(subnetToString(pickFreeSubnet(6, [])!)).toBe("fd00:0:0:1::/64");
    expect(subnetToString(pickFreeSubnet(6, [sub("fd00:0:0:1::/64")])!)).toBe("fd00:0:0:2::/64");
    // An IPv4 subnet in the used list does not affect the IPv6 choice.
    expect(subnetToString(pickFreeSubnet(6, [sub("10.89.0.0/24")])!)).toBe("fd00:0:0:1::/64");
  });

  test("bridge names", () => {
    expect(pickFreeBridgeName([])).toBe("burrow0");
    expect(pickFreeBridgeName(["burrow0", "burrow2", "eth0"])).toBe("burrow1");
    expect(pickFreeBridgeName(["cni-burrow0"], "cni-burrow")).toBe("cni-burrow1");
  });
});

describe("host routes", () => {
  test("/proc/net/route: default route skipped, connected subnet kept", () => {
    const text = [
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
      "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0",
      "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
      "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0",
    ].join("\n");
    expect(parseProcRoute(text, true).map(subnetToString)).toEqual(["192.0.2.0/24", "172.17.0.0/16"]);
  });

  test("/proc/net/ipv6_route: default, link-local and multicast skipped", () => {
    const text = [
      "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0",
      "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0",
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0",
      "ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000004 00000000 00000001     eth0",
    ].join("\n");
    expect(parseProcIpv6Route(text).map(subnetToString)).toEqual(["fd00::/64"]);
  });

  test("a host route makes the picker move on", () => {
    expect(subnetToString(pickFreeSubnet(4, [sub("10.89.0.0/23")])!)).toBe("10.89.2.0/24");
  });
});
