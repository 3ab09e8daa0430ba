import { expect, test } from "bun:test";
import { dnatPorts, isIPv6Loopback, servedByDnat } from "../../src/port-dnat.ts";

test("::1 in any spelling is the IPv6 loopback; nothing else is", () => {
  for (const a of ["::1", "0:0:0:0:0:0:0:1", "0000:0000:0000:0000:0000:0000:0000:0001", "::0:1", "0::1"]) expect(isIPv6Loopback(a)).toBe(true);
  for (const a of ["", "::", "::10", "1::1", "127.0.0.1", "::ffff:127.0.0.1", "fe80::1", "localhost"]) expect(isIPv6Loopback(a)).toBe(false);
});

test("DNAT serves every port but those published on [::1] only", () => {
  expect(servedByDnat({ hostIp: "" })).toBe(true);
  expect(servedByDnat({ hostIp: "::" })).toBe(true);
  expect(servedByDnat({ hostIp: "127.0.0.1" })).toBe(true);
  expect(servedByDnat({ hostIp: "::1" })).toBe(false);
});

test("the plugins get every port but the [::1] ones, [::] as all addresses", () => {
  const p = (hostIp: string) => ({ hostIp, hostPort: 8080, containerPort: 80, protocol: "tcp" as const });
  expect(dnatPorts([p(""), p("::1"), p("::"), p("0:0:0:0:0:0:0:0"), p("127.0.0.1"), p("fd00::1"), p("0.0.0.0")])).toEqual([
    p(""),
    p(""),
    p(""),
    p("127.0.0.1"),
    p("fd00::1"),
    p("0.0.0.0"),
  ]);
  expect(dnatPorts(undefined)).toEqual([]);
});
