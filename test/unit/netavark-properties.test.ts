// Property-based fuzzing (fast-check) of the netavark groundwork's parsers
// of outside input (docs/testing.md, issue 10 item 7's rule): network names
// and subnets for `network create`, network files, --ip values, and
// netavark's own output. Nothing but a one-line BurrowError is ever thrown.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import * as v from "valibot";
import { parseCidr, parseIp, subnetContains, subnetsOverlap } from "../../src/net/cni/ip.ts";
import { pickAddresses } from "../../src/net/netavark/addresses.ts";
import { defaultNetworkConfig, parseNetworkFile, planNetwork } from "../../src/net/netavark/networks-dir.ts";
import { failureMessage } from "../../src/net/netavark/run.ts";
import { NetworkFile } from "../../src/net/netavark/schema.ts";
import { burrowOrValue, params, textOf } from "../helpers/properties.ts";

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));
const cidr4 = fc.tuple(ipv4, fc.nat(32)).map(([a, p]) => `${a}/${p}`);

describe("netavark network files", () => {
  test("planNetwork: any name and subnets give a valid file that overlaps nothing in use, or a one-line BurrowError", () => {
    fc.assert(
      fc.property(
        textOf("abc019_.-", 20),
        fc.array(fc.oneof(cidr4, textOf("0123456789./:", 20)), { maxLength: 2 }),
        fc.array(cidr4, { maxLength: 3 }),
        fc.boolean(),
        (name, subnets, used, ipv6) => {
          const r = burrowOrValue(() =>
            planNetwork({ name, subnets: subnets.map((subnet) => ({ subnet })), ipv6 }, [defaultNetworkConfig()], { subnets: used, interfaces: [] }),
          );
          if (r instanceof Error) return;
          expect(v.safeParse(NetworkFile, r).success).toBe(true);
          const taken = [...used, "10.88.0.0/16"].map((u) => parseCidr(u)!.subnet);
          for (const s of r.subnets ?? []) {
            const mine = parseCidr(s.subnet)!.subnet;
            expect(taken.some((t) => subnetsOverlap(t, mine))).toBe(false);
          }
        },
      ),
      params,
    );
  });

  test("parseNetworkFile: any text is a config or a one-line reason, never a throw", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        const r = parseNetworkFile("x.json", text);
        if ("reason" in r) expect(r.reason).not.toMatch(/[\r\n]/);
      }),
      params,
    );
  });
});

describe("addresses and netavark's output", () => {
  test("pickAddresses: any --ip values give addresses inside the subnets and not in use, or a one-line BurrowError", () => {
    const net = planNetwork({ name: "n", subnets: [{ subnet: "10.50.0.0/28" }] }, [], { subnets: [], interfaces: [] });
    const subnet = parseCidr("10.50.0.0/28")!.subnet;
    fc.assert(
      fc.property(
        fc.array(fc.oneof(ipv4, textOf("0123456789.:", 16)), { maxLength: 2 }),
        fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 16 }),
        (requested, usedHosts) => {
          const used = usedHosts.map((h) => `10.50.0.${h}`);
          const r = burrowOrValue(() => pickAddresses(net, used, requested));
          if (r instanceof Error) return;
          for (const a of r) {
            expect(subnetContains(subnet, parseIp(a)!)).toBe(true);
            expect(used).not.toContain(a);
          }
        },
      ),
      params,
    );
  });

  test("failureMessage: any output is one line", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.integer(), (stdout, stderr, code) => {
        expect(failureMessage({ code, stdout, stderr })).not.toMatch(/[\r\n]/);
      }),
      params,
    );
  });
});
