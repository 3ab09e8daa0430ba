// src/ip-syntax.ts answers what node:net answers (the CLI uses it to avoid
// loading node:net): examples, then fast-check strings made of the pieces
// addresses are made of, so that near-misses are common.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import * as net from "node:net";
import { isIP, isIPv4, isIPv6 } from "../../src/ip-syntax.ts";

const agree = (s: string) => {
  expect({ s, v4: isIPv4(s), v6: isIPv6(s), ip: isIP(s) }).toEqual({ s, v4: net.isIPv4(s), v6: net.isIPv6(s), ip: net.isIP(s) as 0 | 4 | 6 });
};

/** Hex digits, either case, `maxLength` at most. */
const hex = (minLength: number, maxLength: number) => fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), minLength, maxLength });

describe("IP literal syntax, as node:net", () => {
  test("examples", () => {
    const examples = [
      "",
      "0.0.0.0",
      "127.0.0.1",
      "255.255.255.255",
      "256.0.0.1",
      "01.2.3.4",
      "1.2.3",
      "1.2.3.4.5",
      "1.2.3.",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1..3.4",
      "+1.2.3.4",
      "::",
      "::1",
      "1::",
      "::ffff:10.0.2.100",
      "::ffff:1.2.3",
      "1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7::",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7",
      "::1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6:1.2.3.4",
      "1:2:3:4:5:1.2.3.4",
      "1:2:3:4:5::1.2.3.4",
      "1.2.3.4::",
      "1:2:3::4:5::6",
      "fe80::1%eth0",
      "fe80::1%",
      "fe80::1%a%b",
      "fe80::1%eth0.1:x-y",
      "1.2.3.4%eth0",
      "2001:DB8::A",
      "2001:db8::g",
      "12345::",
      ":1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:",
      ":::",
      "1:::2",
      "::0.0.0.0",
      "0:0:0:0:0:0:0.0.0.0",
      "a:b:c:d:e:f:0.0.0.0",
      "a:b:c:d:e::0.0.0.0",
    ];
    for (const s of examples) agree(s);
  });

  test("generated strings", () => {
    const piece = fc.oneof(
      fc.constantFrom(
        "0",
        "1",
        "00",
        "01",
        "9",
        "10",
        "99",
        "100",
        "199",
        "200",
        "249",
        "250",
        "255",
        "256",
        "999",
        "0000",
        "ffff",
        "FFFF",
        "abcd",
        "12345",
        "g",
      ),
      fc.constantFrom(".", ":", "::", "%", "eth0", "-", "a", "", " "),
      hex(0, 5),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 18 }), (parts) => {
        agree(parts.join(""));
      }),
      { numRuns: 20_000 },
    );
  });

  test("generated addresses and their near-misses", () => {
    const v4 = fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300)).map((o) => o.join("."));
    const group = hex(0, 5);
    const v6 = fc
      .tuple(fc.array(group, { minLength: 0, maxLength: 9 }), fc.nat(9), fc.boolean(), fc.option(v4), fc.option(fc.constantFrom("eth0", "1", "", "a.b")))
      .map(([groups, at, gap, tail, z]) => {
        const g = [...groups];
        if (gap) g.splice(Math.min(at, g.length), 0, "");
        let s = g.join(":");
        if (tail !== null) s = `${s}:${tail}`;
        return z === null ? s : `${s}%${z}`;
      });
    fc.assert(
      fc.property(fc.oneof(v4, v6), (s) => {
        agree(s);
      }),
      { numRuns: 20_000 },
    );
  });
});
