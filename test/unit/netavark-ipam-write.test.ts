// burrow's entries in podman's ipam.db (src/net/netavark/ipam-db-write.ts):
// a whole-tree rewrite that the reader (and bbolt: the sid tier's tests
// with podman 5.8) reads back, entries added and removed as podman writes
// a container's, and the file replaced under the writer's flock.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { podmanIpam, current, fnv1a64 } from "../../src/net/netavark/ipam-db.ts";
import { allocate, type Bucket, emptyTree, ipKey, readTree, release, updateIpamDb, writeTree } from "../../src/net/netavark/ipam-db-write.ts";
import { flock, LOCK } from "../../src/sys/proc.ts";
import { close, openRO } from "../../src/sys/ns.ts";

const fixture = readFileSync(join(import.meta.dir, "../fixtures/netavark/podman-5.8-ipam.db"));
const ID = "b".repeat(64);

/** A tree as plain data: keys hex, values hex, buckets nested, order kept. */
function plain(b: Bucket): unknown {
  return { seq: String(b.seq), items: b.items.map((it) => [it.key.toString("hex"), it.bucket ? plain(it.bucket) : it.value!.toString("hex")]) };
}

describe("the tree rewritten", () => {
  test("podman's file reads back the same, every bucket and value", () => {
    const tree = readTree(fixture);
    const again = readTree(writeTree(tree));
    expect(plain(again.root)).toEqual(plain(tree.root));
    expect(again.txid).toBe(tree.txid + 1n);
    for (const net of ["quiet", "other"]) expect(podmanIpam(writeTree(tree), net)).toEqual(podmanIpam(fixture, net));
  });

  test("both meta pages valid (magic, checksum), the current one on page txid % 2, the other one transaction behind", () => {
    const out = writeTree(readTree(fixture));
    const pageSize = out.readUInt32LE(24);
    const txids = [0, 1].map((p) => {
      const m = p * pageSize + 16;
      expect(out.readUInt32LE(m)).toBe(0xed0cdaed);
      expect(fnv1a64(out.subarray(m, m + 56))).toBe(out.readBigUInt64LE(m + 56));
      expect(out.readBigUInt64LE(m + 40)).toBe(BigInt(out.length / pageSize)); // the high-water page
      return out.readBigUInt64LE(m + 48);
    });
    const { txid } = current(out);
    expect(txids[Number(txid % 2n)]).toBe(txid);
    expect(txids[Number((txid + 1n) % 2n)]).toBe(txid - 1n);
    expect(out.readUInt16LE(2 * pageSize + 8)).toBe(0x10); // the freelist page, empty
    expect(out.readUInt16LE(2 * pageSize + 10)).toBe(0);
  });

  test("a bucket larger than a page spans overflow pages and reads back", () => {
    const tree = emptyTree();
    const addresses = Array.from({ length: 400 }, (_, i) => ({ ip: `10.1.${i >> 8}.${i & 255}`, subnet: "10.1.0.0/16" }));
    allocate(tree.root, "big", ID, addresses);
    const out = writeTree(tree);
    expect(podmanIpam(out, "big").addresses).toEqual(addresses.map((a) => a.ip));
  });

  test("property: any tree of buckets and values reads back as written", () => {
    const key = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((a) => Buffer.from(a));
    const value = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
    const { bucket } = fc.letrec((tie) => ({
      bucket: fc
        .record({
          seq: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          entries: fc.uniqueArray(fc.tuple(key, fc.oneof({ depthSize: "small" }, value, tie("bucket"))), {
            selector: ([k]) => k.toString("hex"),
            maxLength: 12,
          }),
        })
        .map(({ seq, entries }) => {
          const items = entries.map(([k, v]) => (Buffer.isBuffer(v) ? { key: k, value: v, bucket: null } : { key: k, value: null, bucket: v as Bucket }));
          items.sort((a, b) => Buffer.compare(a.key, b.key));
          return { seq, items } as Bucket;
        }),
    }));
    fc.assert(
      fc.property(bucket, fc.constantFrom(1024, 4096), (root, pageSize) => {
        const tree = {
          pageSize,
          txid: 7n,
          root: { seq: 0n, items: root.items.map((it) => (it.bucket ? it : { ...it, value: null, bucket: { seq: 0n, items: [] } })) },
        };
        expect(plain(readTree(writeTree(tree)).root)).toEqual(plain(tree.root));
      }),
      { numRuns: 150 },
    );
  });
});

describe("a sandbox's entries", () => {
  test("added as podman adds a container's (address -> id in its subnet's bucket, id -> JSON list in ids), lastIP untouched", () => {
    const tree = readTree(fixture);
    allocate(tree.root, "quiet", ID, [{ ip: "10.89.91.254", subnet: "10.89.91.0/24" }]);
    allocate(tree.root, "other", ID, [
      { ip: "10.89.92.254", subnet: "10.89.92.0/24" },
      { ip: "fd49:922b:6758:d44::fe", subnet: "fd49:922b:6758:d44::/64" },
    ]);
    const out = writeTree(tree);
    expect(podmanIpam(out, "quiet")).toEqual({ addresses: ["10.89.91.3", "10.89.91.200", "10.89.91.254"], lastIps: ["10.89.91.3"] });
    expect(podmanIpam(out, "other").addresses).toContain("fd49:922b:6758:d44::fe");
    const quiet = readTree(out).root.items.find((it) => it.key.toString() === "quiet")!.bucket!;
    const subnet = quiet.items.find((it) => it.key.toString() === "10.89.91.0/24")!.bucket!;
    expect(subnet.items.find((it) => it.key.equals(ipKey("10.89.91.254")))!.value!.toString()).toBe(ID);
  });

  test("a new network's buckets are made; removal takes every entry of that id and nothing else", () => {
    const tree = readTree(fixture);
    const before = plain(readTree(writeTree(tree)).root);
    allocate(tree.root, "fresh", ID, [{ ip: "10.89.99.5", subnet: "10.89.99.0/24" }]);
    allocate(tree.root, "quiet", ID, [{ ip: "10.89.91.254", subnet: "10.89.91.0/24" }]);
    expect(podmanIpam(writeTree(tree), "fresh").addresses).toEqual(["10.89.99.5"]);
    expect(release(tree.root, "quiet", ID)).toBe(true);
    expect(release(tree.root, "quiet", ID)).toBe(false);
    expect(release(tree.root, "nosuch", ID)).toBe(false);
    expect(podmanIpam(writeTree(tree), "quiet")).toEqual(podmanIpam(fixture, "quiet"));
    expect(release(tree.root, "fresh", ID)).toBe(true);
    // The fresh network's (now empty) buckets stay, as podman leaves them.
    const after = plain(readTree(writeTree(tree)).root) as { items: Array<[string, unknown]> };
    expect(after.items.filter(([k]) => k !== Buffer.from("fresh").toString("hex"))).toEqual((before as typeof after).items);
  });

  test("ipKey: 4 bytes for IPv4, 16 for IPv6, as podman's keys", () => {
    expect(ipKey("10.89.91.2").toString("hex")).toBe("0a595b02");
    expect(ipKey("fd49:922b:6758:d44::2").toString("hex")).toBe("fd49922b67580d440000000000000002");
    expect(() => ipKey("nope")).toThrow("not an address");
  });
});

/** A change that adds `id`'s addresses on `network`. */
const adding =
  (network: string, addresses: Array<{ ip: string; subnet: string }>) =>
  (root: Bucket): boolean => {
    allocate(root, network, ID, addresses);
    return true;
  };

describe("the file", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "burrow-ipamw-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("an addition makes the file when there is none (0600); a removal does not; no temporary file is left", async () => {
    const path = `${dir}/ipam.db`;
    await updateIpamDb(path, (root) => release(root, "n", ID), { create: false });
    expect(existsSync(path)).toBe(false);
    await updateIpamDb(path, adding("n", [{ ip: "10.0.0.9", subnet: "10.0.0.0/24" }]), { create: true });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(podmanIpam(readFileSync(path), "n").addresses).toEqual(["10.0.0.9"]);
    await updateIpamDb(path, (root) => release(root, "n", ID), { create: false });
    expect(podmanIpam(readFileSync(path), "n").addresses).toEqual([]);
    expect(readdirSync(dir)).toEqual(["ipam.db"]);
  });

  test("podman's file keeps its mode; a change that changes nothing writes nothing", async () => {
    const path = `${dir}/ipam.db`;
    writeFileSync(path, fixture, { mode: 0o640 });
    const ino = statSync(path).ino;
    await updateIpamDb(path, () => false, { create: false });
    expect(statSync(path).ino).toBe(ino);
    await updateIpamDb(path, adding("quiet", [{ ip: "10.89.91.254", subnet: "10.89.91.0/24" }]), { create: false });
    expect(statSync(path).ino).not.toBe(ino);
    expect(statSync(path).mode & 0o777).toBe(0o640);
  });

  test("podman's writer lock is waited for, then the change is refused, the file untouched", async () => {
    const path = `${dir}/ipam.db`;
    writeFileSync(path, fixture, { mode: 0o600 });
    const held = openRO(path);
    try {
      flock(held, LOCK.EX);
      await expect(updateIpamDb(path, adding("quiet", []), { create: false, waitMs: 30 })).rejects.toThrow();
      expect(readFileSync(path).equals(fixture)).toBe(true);
      expect(readdirSync(dir)).toEqual(["ipam.db"]);
    } finally {
      close(held);
    }
  });

  test("a file that is not bbolt's is refused, not replaced", async () => {
    const path = `${dir}/ipam.db`;
    writeFileSync(path, "not a database at all, but longer than a header ......................................................");
    await expect(updateIpamDb(path, () => true, { create: false })).rejects.toThrow();
    expect(readFileSync(path, "utf8")).toStartWith("not a database");
    expect(readdirSync(dir)).toEqual(["ipam.db"]);
  });
});
