import { describe, expect, test } from "bun:test";
import { canonicalCidr, isInterfaceName, parseSlirp4netnsMode, parseSlirp4netnsOptions, slirp4netnsAddresses } from "../../src/net/slirp4netns/options.ts";
import { thrown } from "../helpers/rejection.ts";

const noIfaces = { interfaceExists: () => false };
const eth0Only = { interfaceExists: (n: string) => n === "eth0" };

const error = thrown;

describe("parseSlirp4netnsMode", () => {
  test("defaults match podman v3", () => {
    expect(parseSlirp4netnsMode("slirp4netns", noIfaces)).toEqual({
      cidr: undefined,
      portHandler: "rootlesskit",
      allowHostLoopback: false,
      enableIPv6: false,
      outboundAddr: undefined,
      outboundAddr6: undefined,
      mtu: 65520,
      sourceIp: true,
    });
  });

  test("other modes are not ours", () => {
    expect(parseSlirp4netnsMode("bridge")).toBeNull();
    expect(parseSlirp4netnsMode("slirp4netnsx")).toBeNull();
    expect(parseSlirp4netnsMode("pasta:slirp4netns")).toBeNull();
  });

  test("every option", () => {
    const o = parseSlirp4netnsMode(
      "slirp4netns:cidr=10.42.0.0/16,port_handler=slirp4netns,allow_host_loopback=true,enable_ipv6=true,outbound_addr=eth0,outbound_addr6=fd00::1,mtu=1500,source_ip=false",
      eth0Only,
    );
    expect(o).toEqual({
      cidr: "10.42.0.0/16",
      portHandler: "slirp4netns",
      allowHostLoopback: true,
      enableIPv6: true,
      outboundAddr: "eth0",
      outboundAddr6: "fd00::1",
      mtu: 1500,
      sourceIp: false,
    });
  });

  test("a repeated option takes its last value, like podman", () => {
    expect(parseSlirp4netnsMode("slirp4netns:mtu=1500,mtu=9000")?.mtu).toBe(9000);
  });

  test("outbound_addr accepts an IPv4 address without looking for an interface", () => {
    expect(parseSlirp4netnsOptions(["outbound_addr=192.168.1.5"], noIfaces).outboundAddr).toBe("192.168.1.5");
  });

  test("outbound_addr6 accepts an interface with enable_ipv6", () => {
    expect(parseSlirp4netnsOptions(["enable_ipv6=true", "outbound_addr6=eth0"], eth0Only).outboundAddr6).toBe("eth0");
  });

  test("boundary MTUs", () => {
    expect(parseSlirp4netnsOptions(["mtu=68"]).mtu).toBe(68);
    expect(parseSlirp4netnsOptions(["mtu=65521"]).mtu).toBe(65521);
  });

  test("boundary prefix lengths", () => {
    expect(parseSlirp4netnsOptions(["cidr=10.0.0.0/8"]).cidr).toBe("10.0.0.0/8");
    expect(parseSlirp4netnsOptions(["cidr=10.0.2.0/25"]).cidr).toBe("10.0.2.0/25");
    // Every /1 overlaps loopback, link-local or multicast (issue 10 item 6).
    expect(() => parseSlirp4netnsOptions(["cidr=0.0.0.0/1"])).toThrow(
      'invalid slirp4netns option cidr="0.0.0.0/1": it overlaps the "this network" range 0.0.0.0/8',
    );
    expect(() => parseSlirp4netnsOptions(["cidr=128.0.0.0/1"])).toThrow(/it overlaps the link-local range 169\.254\.0\.0\/16/);
  });

  test("loopback and multicast networks are refused as cidr=, naming the range", () => {
    expect(() => parseSlirp4netnsOptions(["cidr=127.0.0.0/8"])).toThrow(
      'invalid slirp4netns option cidr="127.0.0.0/8": it overlaps the loopback range 127.0.0.0/8; use a private range such as 10.0.2.0/24',
    );
    expect(() => parseSlirp4netnsOptions(["cidr=224.1.0.0/16"])).toThrow(/multicast range 224\.0\.0\.0\/4/);
    expect(parseSlirp4netnsOptions(["cidr=10.0.2.0/24"]).cidr).toBe("10.0.2.0/24");
  });

  test("the default reads /sys/class/net: lo always exists", () => {
    expect(parseSlirp4netnsOptions(["outbound_addr=lo"]).outboundAddr).toBe("lo");
    expect(() => parseSlirp4netnsOptions(["outbound_addr=burrownope0"])).toThrow(/no such network interface/);
  });
});

describe("invalid options", () => {
  const cases: Array<[string, RegExp]> = [
    ["slirp4netns:", /empty option has no value/],
    ["slirp4netns:cidr", /option "cidr" has no value: write NAME=VALUE/],
    [
      "slirp4netns:bogus=1",
      /unknown slirp4netns option "bogus": accepted options are cidr, port_handler, allow_host_loopback, enable_ipv6, outbound_addr, outbound_addr6, mtu/,
    ],
    ["slirp4netns:=1", /unknown slirp4netns option "": accepted options are/],
    ["slirp4netns:CIDR=10.0.2.0/24", /unknown slirp4netns option "CIDR"/],
    ["slirp4netns:cidr=abc", /cidr="abc": accepted values are an IPv4 network with a prefix length of 1-25/],
    ["slirp4netns:cidr=10.0.2.0", /cidr="10.0.2.0": accepted values are an IPv4 network/],
    ["slirp4netns:cidr=fd00::/64", /cidr="fd00::\/64": accepted values are an IPv4 network/],
    ["slirp4netns:cidr=10.0.2.0/26", /cidr="10.0.2.0\/26": accepted values are an IPv4 network with a prefix length of 1-25/],
    ["slirp4netns:cidr=10.0.2.0/0", /cidr="10.0.2.0\/0"/],
    ["slirp4netns:cidr=10.0.2.0/", /cidr="10.0.2.0\/"/],
    ["slirp4netns:cidr=300.0.2.0/24", /cidr="300.0.2.0\/24"/],
    ["slirp4netns:cidr=10.0.2.5/24", /cidr="10.0.2.5\/24": host bits are set; write the network address, 10.0.2.0\/24/],
    ["slirp4netns:port_handler=builtin", /port_handler="builtin": accepted values are rootlesskit or slirp4netns/],
    ["slirp4netns:port_handler=", /port_handler="": accepted values are rootlesskit or slirp4netns/],
    ["slirp4netns:allow_host_loopback=yes", /allow_host_loopback="yes": accepted values are true or false/],
    ["slirp4netns:allow_host_loopback=True", /allow_host_loopback="True": accepted values are true or false/],
    ["slirp4netns:enable_ipv6=1", /enable_ipv6="1": accepted values are true or false/],
    ["slirp4netns:outbound_addr=fd00::1", /outbound_addr="fd00::1": accepted values are an IPv4 address or the name of an existing network interface/],
    ["slirp4netns:outbound_addr=nope0", /outbound_addr="nope0": no such network interface/],
    ["slirp4netns:outbound_addr=a/b", /outbound_addr="a\/b": accepted values are/],
    ["slirp4netns:outbound_addr=averyveryverylongname", /outbound_addr="averyveryverylongname"/],
    ["slirp4netns:outbound_addr=", /outbound_addr="": accepted values/],
    ["slirp4netns:enable_ipv6=true,outbound_addr6=10.0.0.1", /outbound_addr6="10.0.0.1": accepted values are an IPv6 address/],
    ["slirp4netns:enable_ipv6=true,outbound_addr6=::ffff:10.0.0.1", /outbound_addr6="::ffff:10.0.0.1"/],
    ["slirp4netns:enable_ipv6=true,outbound_addr6=nope0", /outbound_addr6="nope0": no such network interface/],
    ["slirp4netns:outbound_addr6=fd00::1", /outbound_addr6 needs enable_ipv6=true/],
    ["slirp4netns:enable_ipv6=false,outbound_addr6=fd00::1", /outbound_addr6 needs enable_ipv6=true/],
    ["slirp4netns:mtu=abc", /mtu="abc": accepted values are an integer from 68 to 65521/],
    ["slirp4netns:mtu=67", /mtu="67": accepted values are an integer from 68 to 65521/],
    ["slirp4netns:mtu=65522", /mtu="65522"/],
    ["slirp4netns:mtu=-1", /mtu="-1"/],
    ["slirp4netns:mtu=1500.5", /mtu="1500.5"/],
    ["slirp4netns:mtu=", /mtu=""/],
    ["slirp4netns:mtu=999999", /mtu="999999"/],
  ];
  for (const [mode, message] of cases) {
    test(mode, () => {
      const e = error(() => parseSlirp4netnsMode(mode, eth0Only));
      expect(e.message).toMatch(message);
      expect(e.message).not.toContain("\n");
      expect(e.kind).toBe("bad-input");
    });
  }
});

describe("slirp4netnsAddresses", () => {
  test("default network", () => {
    expect(slirp4netnsAddresses({ cidr: undefined, enableIPv6: false })).toEqual({
      cidr: "10.0.2.0/24",
      network: "10.0.2.0",
      prefixLength: 24,
      tapAddress: "10.0.2.100",
      gateway: "10.0.2.2",
      dns: "10.0.2.3",
    });
  });

  test("custom network and IPv6", () => {
    const a = slirp4netnsAddresses({ cidr: "192.168.128.0/17", enableIPv6: true });
    expect(a.tapAddress).toBe("192.168.128.100");
    expect(a.gateway).toBe("192.168.128.2");
    expect(a.dns).toBe("192.168.128.3");
    expect(a.prefixLength).toBe(17);
    expect(a.ipv6).toEqual({ cidr: "fd00::/64", prefixLength: 64, tapAddress: "fd00::100", gateway: "fd00::2", dns: "fd00::3" });
  });

  test("high addresses do not go negative", () => {
    expect(slirp4netnsAddresses({ cidr: "200.1.0.0/16", enableIPv6: false }).tapAddress).toBe("200.1.0.100");
  });

  test("canonicalCidr masks host bits", () => {
    expect(canonicalCidr("10.0.2.5/24")).toBe("10.0.2.0/24");
    expect(canonicalCidr("255.255.255.255/1")).toBe("128.0.0.0/1");
  });
});

test("isInterfaceName follows the kernel's dev_valid_name", () => {
  expect(isInterfaceName("eth0")).toBe(true);
  expect(isInterfaceName("a".repeat(15))).toBe(true);
  expect(isInterfaceName("a".repeat(16))).toBe(false);
  for (const bad of ["", ".", "..", "a b", "a/b", "a:b"]) expect(isInterfaceName(bad)).toBe(false);
});
