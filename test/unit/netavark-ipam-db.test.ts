// podman's ipam.db read-only (src/net/netavark/ipam-db.ts), against a file
// podman 5.8 wrote in the sid tier: networks "quiet" (10.89.91.0/24, no DNS)
// and "other" (10.89.92.0/24 + IPv6); containers pc1 (removed again: its
// 10.89.91.2 given back), pc2 on both, pc3 with --ip 10.89.91.200.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { podmanIpam, readIpamDb } from "../../src/net/netavark/ipam-db.ts";
import { flock, LOCK } from "../../src/sys/proc.ts";
import { close, openRO } from "../../src/sys/ns.ts";

const fixture = join(import.meta.dir, "../fixtures/netavark/podman-5.8-ipam.db");
const db = readFileSync(fixture);
const addressesIn = (bytes: Buffer, network: string) => podmanIpam(bytes, network).addresses;

describe("podman's allocations", () => {
  test("each network's addresses, a removed container's given back; an unknown network has none", () => {
    expect(addressesIn(db, "quiet").sort()).toEqual(["10.89.91.200", "10.89.91.3"]);
    expect(addressesIn(db, "other").sort()).toEqual(["10.89.92.2", "fd49:922b:6758:d44::2"]);
    expect(addressesIn(db, "nosuch")).toEqual([]);
    expect(addressesIn(db, "ids")).toEqual([]);
  });

  test("each subnet's lastIP, where podman's allocator goes on from (4 bytes for IPv4, 16 for IPv6)", () => {
    // quiet: podman gave out .2 and .3, then .200 by --ip (a static address leaves lastIP where it was).
    expect(podmanIpam(db, "quiet").lastIps).toEqual(["10.89.91.3"]);
    expect(podmanIpam(db, "other").lastIps.sort()).toEqual(["10.89.92.2", "fd49:922b:6758:d44::2"]);
    expect(podmanIpam(db, "nosuch")).toEqual({ addresses: [], lastIps: [] });
  });

  test("a file that is not bbolt's, or whose both meta pages are bad, is refused", () => {
    expect(() => addressesIn(Buffer.alloc(50), "quiet")).toThrow("too short");
    expect(() => addressesIn(Buffer.alloc(8192), "quiet")).toThrow("page size 0");
    const bad = Buffer.from(db);
    const pageSize = bad.readUInt32LE(24);
    for (const off of [0, pageSize]) bad.writeUInt8(bad.readUInt8(off + 16 + 56) ^ 0xff, off + 16 + 56); // each meta page's checksum
    expect(() => addressesIn(bad, "quiet")).toThrow("no valid meta page");
    expect(() => addressesIn(db.subarray(0, 2 * pageSize), "quiet")).toThrow("out of the file");
  });

  test("a branch page that points at itself, or at its parent, is refused, not followed", () => {
    const pageSize = db.readUInt32LE(24);
    const txid = (off: number) => db.readBigUInt64LE(off + 16 + 48);
    const meta = txid(0) > txid(pageSize) ? 0 : pageSize;
    const root = Number(db.readBigUInt64LE(meta + 16 + 16));
    const b = Buffer.from(db);
    const at = root * pageSize;
    b.writeUInt16LE(0x01, at + 8); // a branch page
    b.writeUInt16LE(200, at + 10); // of 200 children
    for (let i = 0; i < 200; i++) {
      b.writeUInt32LE(0, at + 16 + i * 16);
      b.writeUInt32LE(0, at + 16 + i * 16 + 4);
      b.writeBigUInt64LE(BigInt(root), at + 16 + i * 16 + 8);
    }
    expect(() => addressesIn(b, "quiet")).toThrow(`page ${root} reached twice`);
  });

  test("any corruption ends in an answer or an error, never a hang (page loops, fan-out, positions)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(db.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 40 }), (flips) => {
        const b = Buffer.from(db);
        for (const [at, value] of flips) b[at] = value;
        try {
          const got = addressesIn(b, "quiet");
          expect(Array.isArray(got) && got.every((x) => typeof x === "string")).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe("reading the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-ipam-"));
  const path = join(dir, "ipam.db");
  writeFileSync(path, db);

  test("the bytes as they are; no file is null", async () => {
    expect((await readIpamDb(path))!.equals(db)).toBe(true);
    expect(await readIpamDb(join(dir, "none.db"))).toBeNull();
  });

  test("a writer's exclusive lock is waited for, then the read is refused", async () => {
    // bbolt's writer (podman) holds flock(LOCK_EX) while it writes.
    const held = openRO(path);
    try {
      flock(held, LOCK.EX);
      await expect(readIpamDb(path, 20)).rejects.toThrow("EAGAIN");
      // A shared lock (another reader) does not stop it.
      flock(held, LOCK.SH);
      expect((await readIpamDb(path, 20))!.length).toBe(db.length);
    } finally {
      close(held);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
