// Names in egress rules (src/egress/names.ts): patterns, matching, and the
// CNAME chain of an answer.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type ChainRecord, followChain, type HostPattern, MAX_CHAIN, matchingPatterns, nameMatches, parseHostPattern } from "../../src/egress/names.ts";

const pattern = (s: string) => parseHostPattern(s) as HostPattern;

describe("patterns", () => {
  test("exact names match themselves only, in any case, with or without the trailing dot", () => {
    const p = pattern("PyPI.org");
    expect(nameMatches(p, "pypi.org")).toBe(true);
    expect(nameMatches(p, "PYPI.ORG.")).toBe(true);
    expect(nameMatches(p, "files.pypi.org")).toBe(false);
    expect(nameMatches(p, "pypi.org.evil.test")).toBe(false);
    expect(nameMatches(p, "xpypi.org")).toBe(false);
  });

  test("*.name matches one or more labels below name, not name itself", () => {
    const p = pattern("*.pythonhosted.org");
    expect(nameMatches(p, "files.pythonhosted.org")).toBe(true);
    expect(nameMatches(p, "a.b.pythonhosted.org")).toBe(true);
    expect(nameMatches(p, "pythonhosted.org")).toBe(false);
    expect(nameMatches(p, "evilpythonhosted.org")).toBe(false);
  });

  test("a name with an escaped byte (a dot inside a label) never matches", () => {
    expect(nameMatches(pattern("pypi.org"), "pypi\\046org")).toBe(false);
    expect(nameMatches(pattern("*.pypi.org"), "x\\046y.pypi.org")).toBe(false);
    expect(nameMatches(pattern("*.pypi.org"), "x..pypi.org")).toBe(false);
  });

  test("which patterns match, by index", () => {
    expect(matchingPatterns([pattern("a.test"), pattern("*.test.example"), pattern("*.a.test")], "x.a.test")).toEqual([2]);
  });

  test("property: *.base matches exactly the names that end in .base and are longer", () => {
    const label = fc.stringMatching(/^[a-z](?:[a-z0-9-]{0,8}[a-z0-9])?$/);
    fc.assert(
      fc.property(fc.array(label, { minLength: 2, maxLength: 3 }), fc.array(label, { maxLength: 3 }), (base, prefix) => {
        const p = pattern(`*.${base.join(".")}`);
        const name = [...prefix, ...base].join(".");
        expect(nameMatches(p, name)).toBe(prefix.length > 0);
        expect(nameMatches(p, name.toUpperCase())).toBe(prefix.length > 0);
      }),
    );
  });
});

describe("CNAME chains", () => {
  const rec = (name: string, type: ChainRecord["type"], data: string, ttl = 300): ChainRecord => ({ name, type, data, ttl });

  test("follows the chain from the asked name to its addresses, with the smallest TTL", () => {
    const chain = followChain("cdn.allowed.test", [
      rec("cdn.allowed.test", "CNAME", "edge.cdn.example.", 600),
      rec("Edge.CDN.example", "CNAME", "allowed.test", 120),
      rec("allowed.test", "A", "198.51.100.10", 300),
      rec("allowed.test", "AAAA", "2001:db8::10", 60),
    ]);
    expect(chain).toEqual({
      names: ["cdn.allowed.test", "edge.cdn.example", "allowed.test"],
      addresses: [rec("allowed.test", "A", "198.51.100.10", 300), rec("allowed.test", "AAAA", "2001:db8::10", 60)],
      ttl: 60,
      strays: 0,
    });
  });

  test("addresses of names off the chain are strays, never the answer", () => {
    const chain = followChain("allowed.test", [rec("allowed.test", "A", "198.51.100.10"), rec("denied.test", "A", "198.51.100.20")]);
    expect(chain).toMatchObject({ addresses: [rec("allowed.test", "A", "198.51.100.10")], strays: 1 });
    const skipped = followChain("a.test", [rec("a.test", "CNAME", "b.test"), rec("a.test", "A", "198.51.100.20"), rec("b.test", "A", "198.51.100.10")]);
    expect(skipped).toMatchObject({ addresses: [rec("b.test", "A", "198.51.100.10")], strays: 1 });
  });

  test("loops, forks and over-long chains are refused", () => {
    expect(followChain("a.test", [rec("a.test", "CNAME", "b.test"), rec("b.test", "CNAME", "a.test")])).toContain("loops");
    expect(followChain("a.test", [rec("a.test", "CNAME", "b.test"), rec("a.test", "CNAME", "c.test")])).toContain("2 CNAME records");
    const long = Array.from({ length: MAX_CHAIN + 1 }, (_, i) => rec(`n${i}.test`, "CNAME", `n${i + 1}.test`));
    expect(followChain("n0.test", long)).toContain("longer than");
    expect(typeof followChain("n0.test", long.slice(0, MAX_CHAIN))).toBe("object");
  });
});
