// burrow's address choice for netavark networks (src/net/netavark/addresses.ts):
// netavark allocates nothing, and takes an address outside every subnet.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import * as v from "valibot";
import { leaseRangeOf, pickAddresses } from "../../src/net/netavark/addresses.ts";
import { defaultNetworkConfig } from "../../src/net/netavark/networks-dir.ts";
import { NetworkFile } from "../../src/net/netavark/schema.ts";

const file = (name: string) => v.parse(NetworkFile, JSON.parse(readFileSync(join(import.meta.dir, `../fixtures/netavark/podman-5.8-${name}.json`), "utf8")));

test("the free address podman reaches last: from the top down, skipping the gateway and used ones; one per subnet (IPv4 and IPv6)", () => {
  expect(pickAddresses(file("nvtest1"), [])).toEqual(["10.89.0.254"]);
  expect(pickAddresses(file("nvtest1"), ["10.89.0.254", "10.89.0.253"])).toEqual(["10.89.0.252"]);
  // nvtest2: 10.89.1.0/24 and fd5a:4d47:7699:fab6::/64; the last address of each is kept out, as podman does.
  expect(pickAddresses(file("nvtest2"), [])).toEqual(["10.89.1.254", "fd5a:4d47:7699:fab6:ffff:ffff:ffff:fffe"]);
});

test("podman's lastIP: down from it (podman's next allocation goes up from it), then from the top", () => {
  const n = file("nvtest1"); // 10.89.0.0/24, gateway .1
  const held = ["10.89.0.2", "10.89.0.3"];
  // podman gave out up to .7 and has freed .4-.7: .7 is the free address its allocator reaches last.
  expect(pickAddresses(n, held, [], ["10.89.0.7"])).toEqual(["10.89.0.7"]);
  // Everything from .7 down to the range's start held (the gateway is never handed out): round to the top.
  const low = ["2", "3", "4", "5", "6", "7"].map((x) => `10.89.0.${x}`);
  expect(pickAddresses(n, low, [], ["10.89.0.7"])).toEqual(["10.89.0.254"]);
  // A lastIP of another family, or outside the range, says nothing about this subnet.
  expect(pickAddresses(n, [], [], ["fd00::7", "10.77.0.9"])).toEqual(["10.89.0.254"]);
  // Per subnet: each family's own lastIP.
  expect(pickAddresses(file("nvtest2"), [], [], ["10.89.1.9", "fd5a:4d47:7699:fab6::5"])).toEqual(["10.89.1.9", "fd5a:4d47:7699:fab6::5"]);
});

test("property: burrow's pick is the free address podman's allocator would reach last, so podman takes it only after every other", () => {
  // A /27 with its gateway at .1, a lease range or none, podman's lastIP anywhere in it or absent, random held addresses.
  fc.assert(
    fc.property(
      fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
      fc.subarray(Array.from({ length: 30 }, (_, i) => i + 1)),
      fc.option(fc.tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 30 })), { nil: undefined }),
      (lastHost, heldHosts, range) => {
        const [lo, hi] = range ? [Math.min(...range), Math.max(...range)] : [1, 30];
        const n = {
          ...file("nvtest1"),
          subnets: [
            {
              subnet: "10.66.0.0/27",
              gateway: "10.66.0.1",
              ...(range ? { lease_range: { start_ip: `10.66.0.${lo}`, end_ip: `10.66.0.${hi}` } } : {}),
            },
          ],
        };
        const held = heldHosts.map((h) => `10.66.0.${h}`);
        const last = lastHost !== undefined ? [`10.66.0.${lastHost}`] : [];
        // podman's order: from lastIP + 1 (or the range's start) up to the range's end, then from its start; never its gateway.
        const inRange = lastHost !== undefined && lastHost >= lo && lastHost <= hi;
        const order: number[] = [];
        for (let i = 0, from = inRange ? lastHost! + 1 : lo; i <= hi - lo; i++) order.push(((from - lo + i) % (hi - lo + 1)) + lo);
        const free = order.filter((h) => h !== 1 && !heldHosts.includes(h));
        if (!free.length) {
          expect(() => pickAddresses(n, held, [], last)).toThrow("no free IP address left");
          return;
        }
        expect(pickAddresses(n, held, [], last)).toEqual([`10.66.0.${free[free.length - 1]}`]);
      },
    ),
    { numRuns: 500 },
  );
});

test("lease_range bounds the choice; a gateway at the end of the subnet is skipped", () => {
  // nvtest3: 10.99.0.0/24, gateway .254, range .10-.20
  expect(pickAddresses(file("nvtest3"), [])).toEqual(["10.99.0.20"]);
  const used = Array.from({ length: 11 }, (_, i) => `10.99.0.${10 + i}`);
  expect(() => pickAddresses(file("nvtest3"), used)).toThrow("no free IP address left in 10.99.0.0/24 of network nvtest3");
});

test("a requested address is checked: in a subnet, not network/broadcast/gateway, not taken", () => {
  const n = file("nvtest1");
  expect(pickAddresses(n, [], ["10.89.0.77"])).toEqual(["10.89.0.77"]);
  expect(() => pickAddresses(n, [], ["10.77.0.5"])).toThrow("IP address 10.77.0.5 is not in a subnet of network nvtest1 (10.89.0.0/24)");
  expect(() => pickAddresses(n, [], ["10.89.0.1"])).toThrow("IP address 10.89.0.1 is the gateway of network nvtest1");
  expect(() => pickAddresses(n, [], ["10.89.0.255"])).toThrow("is the network or broadcast address");
  expect(() => pickAddresses(n, ["10.89.0.77"], ["10.89.0.77"])).toThrow("IP address 10.89.0.77 is already allocated on network nvtest1");
  expect(() => pickAddresses(n, [], ["nope"])).toThrow('invalid IP address "nope"');
  expect(() => pickAddresses(n, [], ["10.89.0.7", "10.89.0.8"])).toThrow("two IP addresses for one subnet");
});

test("a requested IPv4 address on a dual-stack network still gets an IPv6 one; IPAM none gets none", () => {
  const got = pickAddresses(file("nvtest2"), [], ["10.89.1.50"]);
  expect(got[0]).toBe("10.89.1.50");
  expect(got[1]).toBe("fd5a:4d47:7699:fab6:ffff:ffff:ffff:fffe");
  expect(pickAddresses(file("nvnone"), [])).toEqual([]);
  expect(pickAddresses(defaultNetworkConfig(), [])).toEqual(["10.88.255.254"]);
});

test("--ip-range: a CIDR range is written as podman writes it, START-END as given, inside its subnet", () => {
  // podman 5.8 and 4.3 both wrote 10.99.7.129 - 10.99.7.255 for --subnet 10.99.7.0/24 --ip-range 10.99.7.128/25.
  expect(leaseRangeOf("10.99.7.128/25", ["10.99.7.0/24"])).toEqual({ index: 0, start: "10.99.7.129", end: "10.99.7.255" });
  expect(leaseRangeOf("10.99.8.10-10.99.8.20", ["fd00:1::/64", "10.99.8.0/24"])).toEqual({ index: 1, start: "10.99.8.10", end: "10.99.8.20" });
  expect(leaseRangeOf("fd00:1::100-fd00:1::1ff", ["10.99.8.0/24", "fd00:1::/64"])).toEqual({ index: 1, start: "fd00:1::100", end: "fd00:1::1ff" });
  const forms = "a CIDR range such as 10.89.5.128/25 or START-END such as 10.89.5.10-10.89.5.20";
  const refusal = (text: string, subnets: string[]) => {
    try {
      leaseRangeOf(text, subnets);
    } catch (e) {
      return (e as Error).message;
    }
    return "accepted";
  };
  expect(refusal("10.99.7.128", ["10.99.7.0/24"])).toBe(`invalid --ip-range "10.99.7.128": ${forms}`);
  expect(refusal("10.99.7.0/33", ["10.99.7.0/24"])).toBe(`invalid --ip-range "10.99.7.0/33": ${forms}`);
  expect(refusal("10.99.7.20-10.99.7.10", ["10.99.7.0/24"])).toBe(
    `invalid --ip-range "10.99.7.20-10.99.7.10": START and END of one family, START first; ${forms}`,
  );
  expect(refusal("10.99.7.1-fd00::1", ["10.99.7.0/24"])).toContain("START and END of one family");
  expect(refusal("10.99.7.7/32", ["10.99.7.0/24"])).toContain("it holds no address to hand out");
  expect(refusal("10.99.6.0/25", ["10.99.7.0/24"])).toBe('--ip-range "10.99.6.0/25" is not inside subnet 10.99.7.0/24');
  expect(refusal("10.99.7.250-10.99.8.5", ["10.99.7.0/24", "10.99.8.0/24"])).toBe(
    '--ip-range "10.99.7.250-10.99.8.5" is not inside subnet 10.99.7.0/24 or 10.99.8.0/24',
  );
  expect(refusal("10.99.7.128/25", [])).toBe('--ip-range "10.99.7.128/25" is not inside any subnet: give --subnet too');
});

test("a lease range ending on the subnet's last address (podman's CIDR form) never hands that address out", () => {
  const n = {
    ...file("nvtest1"),
    subnets: [{ subnet: "10.99.7.0/24", gateway: "10.99.7.1", lease_range: { start_ip: "10.99.7.129", end_ip: "10.99.7.255" } }],
  };
  expect(pickAddresses(n, [])).toEqual(["10.99.7.254"]);
  const used = Array.from({ length: 126 }, (_, i) => `10.99.7.${129 + i}`);
  expect(() => pickAddresses(n, used)).toThrow("no free IP address left in 10.99.7.0/24");
});
