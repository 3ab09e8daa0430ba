import { expect, test } from "bun:test";
import { usableGlobalIPv6 } from "../../src/net/slirp4netns/ipv6.ts";

const line = (hex: string, scope: string, flags: string, dev: string) => `${hex} 02 40 ${scope} ${flags}     ${dev}`;

test("the first usable global address of the device, RFC 5952 text", () => {
  const text = [
    line("00000000000000000000000000000001", "10", "80", "lo"),
    line("fe800000000000008c1687fffe638340", "20", "80", "tap0"),
    line("fd000000000000008c1687fffe638340", "00", "00", "tap0"),
  ].join("\n");
  expect(usableGlobalIPv6(text, "tap0")).toBe("fd00::8c16:87ff:fe63:8340");
  expect(usableGlobalIPv6(text, "eth0")).toBeNull();
});

test("a tentative or failed address is not usable yet", () => {
  expect(usableGlobalIPv6(line("fd000000000000008c1687fffe638340", "00", "40", "tap0"), "tap0")).toBeNull();
  expect(usableGlobalIPv6(line("fd000000000000008c1687fffe638340", "00", "08", "tap0"), "tap0")).toBeNull();
  expect(usableGlobalIPv6("", "tap0")).toBeNull();
});

test("zero runs: the longest of two or more groups becomes ::", () => {
  expect(usableGlobalIPv6(line("20010db8000000010000000000000001", "00", "00", "tap0"), "tap0")).toBe("2001:db8:0:1::1");
  expect(usableGlobalIPv6(line("20010db8000100020003000400050006", "00", "00", "tap0"), "tap0")).toBe("2001:db8:1:2:3:4:5:6");
  expect(usableGlobalIPv6(line("20010db8000000010001000000000000", "00", "00", "tap0"), "tap0")).toBe("2001:db8:0:1:1::");
});
