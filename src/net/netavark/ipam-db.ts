// podman's own address allocations on its netavark networks: ipam.db in
// podman's network run dir (rootful /run/containers/networks, which burrow's
// netavark shares). podman keeps them in a bbolt file, not in aardvark-dns's
// files, so on a network without DNS burrow saw none of them and could hand a
// sandbox an address a podman container holds (docs/netavark.md).
//
// Read-only and only what burrow needs: bucket NETWORK, its bucket "ids"
// (container id -> a JSON array of addresses), and in each subnet's bucket
// (named by the subnet, "10.89.91.0/24") the key "lastIP": the address
// podman handed out last there (4 or 16 bytes), from which its next
// allocation goes on upwards and wraps around. bbolt's layout, read from
// its documentation and a file podman 5.8 wrote (test/fixtures/netavark):
// pages of the size the meta page gives; pages 0 and 1 are meta pages (magic
// 0xED0CDAED, version 2, the root bucket's page, a txid, an FNV-1a checksum),
// the valid one with the higher txid is current; a page is a 16-byte header
// (id, flags, count, overflow) and `count` 16-byte elements, branch (key
// position and size, child page) or leaf (flags, key position and size,
// value size), positions relative to the element; a leaf element flagged as
// a bucket holds the bucket's root page and sequence, root 0 meaning an
// inline page follows in the value. Little-endian (x86_64, aarch64).
//
// No npm package reads bbolt files (none in the registry list, env/packages/npm.tsv); this is ~100 lines (docs/decisions.md).
import * as v from "valibot";
import { fstatSync, readFileSync } from "node:fs";
import { flock, LOCK } from "../../sys/proc.ts";
import { close, openRO } from "../../sys/ns.ts";
import { isSysError } from "../../sys/libc.ts";
import { formatIp } from "../cni/ip.ts";

export const MAGIC = 0xed0cdaed;
export const VERSION = 2;
export const HEADER = 16;
export const ELEMENT = 16;
const BRANCH = 0x01;
export const LEAF = 0x02;
export const META = 0x04;
export const FREELIST = 0x10;
export const BUCKET_LEAF = 0x01;
/** A meta page's fields before its checksum (magic .. txid). */
export const META_CHECKED = 56;
/** Far more than any real tree's depth: a corrupt file cannot loop. */
const MAX_DEPTH = 32;
/** podman's file is 32-64 KB; one much larger is not read. */
const MAX_BYTES = 64 * 1024 * 1024;

export class BadDb extends Error {}

export function fnv1a64(b: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const x of b) h = BigInt.asUintN(64, (h ^ BigInt(x)) * 0x100000001b3n);
  return h;
}

export interface Node {
  buf: Buffer;
  off: number;
}

/** The current meta page's page size, root bucket page and transaction id. */
export function current(db: Buffer): { pageSize: number; root: bigint; txid: bigint } {
  if (db.length < 2 * HEADER + META_CHECKED) throw new BadDb("too short");
  const pageSize = db.readUInt32LE(HEADER + 8);
  if (pageSize < 512 || pageSize > 65536 || pageSize & (pageSize - 1)) throw new BadDb(`page size ${pageSize}`);
  let best: { txid: bigint; root: bigint } | null = null;
  for (const off of [0, pageSize]) {
    if (off + HEADER + META_CHECKED + 8 > db.length) continue;
    const m = off + HEADER;
    if (!(db.readUInt16LE(off + 8) & META) || db.readUInt32LE(m) !== MAGIC || db.readUInt32LE(m + 4) !== VERSION) continue;
    if (fnv1a64(db.subarray(m, m + META_CHECKED)) !== db.readBigUInt64LE(m + META_CHECKED)) continue;
    const txid = db.readBigUInt64LE(m + 48);
    if (!best || txid > best.txid) best = { txid, root: db.readBigUInt64LE(m + 16) };
  }
  if (!best) throw new BadDb("no valid meta page");
  return { pageSize, root: best.root, txid: best.txid };
}

/** One walk of the file: each page is read at most once (a tree shares none), so a corrupt file cannot loop or fan out. */
export class Walk {
  private readonly seen = new Set<number>();
  constructor(
    readonly db: Buffer,
    readonly pageSize: number,
  ) {}

  page(id: bigint): Node {
    const off = Number(id) * this.pageSize;
    if (id < 2n || off + HEADER > this.db.length) throw new BadDb(`page ${id} out of the file`);
    if (this.seen.has(off)) throw new BadDb(`page ${id} reached twice`);
    this.seen.add(off);
    return { buf: this.db, off };
  }

  /** Every key and value of the tree at `node`, leaves in order. */
  *entries(node: Node, depth = 0): Generator<{ key: Buffer; value: Buffer; flags: number }> {
    if (depth > MAX_DEPTH) throw new BadDb("tree too deep");
    const { buf, off } = node;
    if (off + HEADER > buf.length) throw new BadDb("page out of the file");
    const flags = buf.readUInt16LE(off + 8);
    const count = buf.readUInt16LE(off + 10);
    if (off + HEADER + count * ELEMENT > buf.length) throw new BadDb("elements out of the page");
    for (let i = 0; i < count; i++) {
      const e = off + HEADER + i * ELEMENT;
      if (flags & BRANCH) {
        yield* this.entries(this.page(buf.readBigUInt64LE(e + 8)), depth + 1);
      } else if (flags & LEAF) {
        const start = e + buf.readUInt32LE(e + 4);
        const ksize = buf.readUInt32LE(e + 8);
        const vsize = buf.readUInt32LE(e + 12);
        if (start + ksize + vsize > buf.length) throw new BadDb("value out of the page");
        yield { key: buf.subarray(start, start + ksize), value: buf.subarray(start + ksize, start + ksize + vsize), flags: buf.readUInt32LE(e) };
      } else throw new BadDb(`page flags ${flags}`);
    }
  }

  /** The bucket `name` inside the bucket at `node`, or null. */
  bucket(node: Node, name: string): Node | null {
    for (const e of this.entries(node)) {
      if (!(e.flags & BUCKET_LEAF) || e.key.toString("latin1") !== name) continue;
      if (e.value.length < 16) throw new BadDb("short bucket header");
      const root = e.value.readBigUInt64LE(0);
      return root === 0n ? { buf: e.value, off: 16 } : this.page(root);
    }
    return null;
  }
}

const Addresses = v.array(v.pipe(v.string(), v.maxLength(64)));

/** What podman's ipam.db says about one network. */
export interface PodmanIpam {
  /** Every address podman's containers hold there. */
  addresses: string[];
  /** Per subnet, the address podman handed out last (its allocator goes on from the next one). */
  lastIps: string[];
}

/** A Go net.IP as bbolt holds it: 4 bytes, or 16 (IPv6, or IPv4 mapped into ::ffff:0:0/96). */
export function ipOfBytes(b: Buffer): string {
  if (b.length === 4) return formatIp(4, BigInt(b.readUInt32BE(0)));
  if (b.length !== 16) throw new BadDb(`lastIP of ${b.length} bytes`);
  const value = (b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8);
  return value >> 32n === 0xffffn ? formatIp(4, value & 0xffffffffn) : formatIp(6, value);
}

/**
 * What podman's ipam.db bytes `db` say about `network`: the values of its
 * "ids" bucket and each subnet bucket's "lastIP". Throws on a file that is
 * not a bbolt file of that shape (the caller says so and goes on without it).
 */
export function podmanIpam(db: Buffer, network: string): PodmanIpam {
  const { pageSize, root } = current(db);
  const walk = new Walk(db, pageSize);
  const net = walk.bucket(walk.page(root), network);
  const out: PodmanIpam = { addresses: [], lastIps: [] };
  if (!net) return out;
  // One pass over the network's bucket (a walk reads each page once): "ids" and the subnets' buckets.
  const inner: Array<{ name: string; node: Node }> = [];
  for (const e of walk.entries(net)) {
    if (!(e.flags & BUCKET_LEAF)) continue;
    if (e.value.length < 16) throw new BadDb("short bucket header");
    const r = e.value.readBigUInt64LE(0);
    inner.push({ name: e.key.toString("latin1"), node: r === 0n ? { buf: e.value, off: 16 } : walk.page(r) });
  }
  for (const { name, node } of inner) {
    for (const e of walk.entries(node)) {
      if (e.flags & BUCKET_LEAF) continue;
      if (name === "ids") out.addresses.push(...addressesOf(e.key, e.value));
      else if (e.key.toString("latin1") === "lastIP") out.lastIps.push(ipOfBytes(e.value));
    }
  }
  return out;
}

function addressesOf(key: Buffer, value: Buffer): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString("utf8"));
  } catch {
    throw new BadDb(`container ${key.toString("latin1").slice(0, 12)}: not JSON`);
  }
  if (!v.is(Addresses, parsed)) throw new BadDb(`container ${key.toString("latin1").slice(0, 12)}: not a list of addresses`);
  return parsed;
}

/** bbolt's file lock (`mode`: LOCK.SH to read, LOCK.EX to write), polled every 5 ms off the event loop for up to `waitMs`; then the EAGAIN is thrown. */
export async function flockWithin(fd: number, mode: number, waitMs: number): Promise<void> {
  for (let waited = 0; ; waited += 5) {
    try {
      flock(fd, mode | LOCK.NB);
      return;
    } catch (e) {
      if (!isSysError(e, "EAGAIN") || waited >= waitMs) throw e;
      await Bun.sleep(5);
    }
  }
}

/**
 * The bytes of `path` read under a shared flock(2), as bbolt's own readers
 * take it (podman holds it exclusively while it writes); null when there
 * is no such file. Waits up to `waitMs` for podman to finish (off the
 * daemon's event loop); then throws.
 */
export async function readIpamDb(path: string, waitMs = 200): Promise<Buffer | null> {
  let fd: number;
  try {
    fd = openRO(path);
  } catch (e) {
    if (isSysError(e, "ENOENT", "ENOTDIR")) return null;
    throw e;
  }
  try {
    await flockWithin(fd, LOCK.SH, waitMs);
    const size = fstatSync(fd).size;
    if (size > MAX_BYTES) throw new BadDb(`${size} bytes`);
    return readFileSync(fd);
  } finally {
    close(fd);
  }
}
