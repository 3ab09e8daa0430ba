// burrow's address choice for netavark networks (src/net/netavark/addresses.ts):
// netavark allocates nothing, and takes an address outside every subnet.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { leaseRangeOf, pickAddresses } from "../../src/net/netavark/addresses.ts";
import { defaultNetworkConfig } from "../../src/net/netavark/networks-dir.ts";
import { NetworkFile } from "../../src/net/netavark/schema.ts";

const file = (name: string) => v.parse(NetworkFile, JSON.parse(readFileSync(join(import.meta.dir, `../fixtures/netavark/podman-5.8-${name}.json`), "utf8")));

test("the first free address, skipping the gateway and used ones; one per subnet (IPv4 and IPv6)", () => {
  expect(pickAddresses(file("nvtest1"), [])).toEqual(["10.89.0.2"]);
  expect(pickAddresses(file("nvtest1"), ["10.89.0.2", "10.89.0.3"])).toEqual(["10.89.0.4"]);
  const dual = pickAddresses(file("nvtest2"), []);
  expect(dual).toHaveLength(2);
  expect(dual[0]).toBe("10.89.1.2");
  expect(dual[1]).toMatch(/^fd[0-9a-f:]+::2$/);
});

test("lease_range bounds the choice; a gateway at the end of the subnet is skipped", () => {
  // nvtest3: 10.99.0.0/24, gateway .254, range .10-.20
  expect(pickAddresses(file("nvtest3"), [])).toEqual(["10.99.0.10"]);
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
  expect(got[1]).toMatch(/::2$/);
  expect(pickAddresses(file("nvnone"), [])).toEqual([]);
  expect(pickAddresses(defaultNetworkConfig(), [])).toEqual(["10.88.0.2"]);
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
  expect(pickAddresses(n, [])).toEqual(["10.99.7.129"]);
  const used = Array.from({ length: 126 }, (_, i) => `10.99.7.${129 + i}`);
  expect(() => pickAddresses(n, used)).toThrow("no free IP address left in 10.99.7.0/24");
});
