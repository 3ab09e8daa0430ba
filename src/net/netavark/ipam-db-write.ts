// burrow's sandboxes' addresses written into podman's ipam.db, so that
// podman's allocator, which reads nothing else, never hands a podman
// container an address a sandbox holds (docs/netavark.md "podman's
// ipam.db, both ways"). Only where podman shares the bridge: rootful in
// podman's run dir, and rootless in podman 5's namespace (podman-netns.ts).
//
// An entry is what podman writes for a container of its own: in bucket
// NETWORK, the subnet's bucket maps the address (4 or 16 bytes) to the
// container id, and bucket "ids" maps the id to a JSON list of its
// addresses. "lastIP" is left alone: podman's allocator goes on from its
// own last address and skips every address it finds taken.
//
// The file is bbolt's (the reader and its layout: ipam-db.ts). Rather than
// bbolt's copy-on-write update in place, the whole tree is read, changed and
// written as a new compact file that replaces the old one by rename(2):
// each bucket one leaf page (with overflow pages when it is larger), both
// meta pages naming it with the next transaction ids, an empty freelist.
// That is a file bbolt opens as any other (tested: podman 5.8 allocates
// around burrow's entries and frees its own in it). It is done under
// podman's netavark.lock (the caller's) and an exclusive flock(2) on the old
// file, which is what bbolt takes to write; podman opens ipam.db only under
// netavark.lock, so it always opens the new file.
import { closeSync, constants, fstatSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { LOCK } from "../../sys/proc.ts";
import { parseIp } from "../cni/ip.ts";
import {
  BadDb,
  BUCKET_LEAF,
  current,
  ELEMENT,
  FREELIST,
  flockWithin,
  fnv1a64,
  HEADER,
  LEAF,
  MAGIC,
  META,
  META_CHECKED,
  type Node,
  VERSION,
  Walk,
} from "./ipam-db.ts";

export interface Bucket {
  seq: bigint;
  /** Sorted by key (bytes), as bbolt keeps them. */
  items: Item[];
}

export interface Item {
  key: Buffer;
  value: Buffer | null;
  bucket: Bucket | null;
}

export interface Tree {
  pageSize: number;
  txid: bigint;
  root: Bucket;
}

/** Deeper than any real file's nesting (podman's: 3). */
const MAX_NESTING = 16;
/** podman's file is 32-64 KB; one much larger is not rewritten. */
const MAX_BYTES = 64 * 1024 * 1024;

function readBucket(walk: Walk, node: Node, seq: bigint, depth: number): Bucket {
  if (depth > MAX_NESTING) throw new BadDb("buckets nested too deep");
  const items: Item[] = [];
  for (const e of walk.entries(node)) {
    if (!(e.flags & BUCKET_LEAF)) {
      items.push({ key: Buffer.from(e.key), value: Buffer.from(e.value), bucket: null });
      continue;
    }
    if (e.value.length < 16) throw new BadDb("short bucket header");
    const root = e.value.readBigUInt64LE(0);
    const child = root === 0n ? { buf: Buffer.from(e.value), off: 16 } : walk.page(root);
    items.push({ key: Buffer.from(e.key), value: null, bucket: readBucket(walk, child, e.value.readBigUInt64LE(8), depth + 1) });
  }
  items.sort((a, b) => Buffer.compare(a.key, b.key));
  return { seq, items };
}

/** Every bucket and value of a bbolt file. Throws BadDb on a file that is not one. */
export function readTree(db: Buffer): Tree {
  const { pageSize, root, txid } = current(db);
  const walk = new Walk(db, pageSize);
  return { pageSize, txid, root: readBucket(walk, walk.page(root), 0n, 0) };
}

/** An empty database, as bbolt makes one (page size 4096, transactions 0 and 1 done). */
export function emptyTree(): Tree {
  return { pageSize: 4096, txid: 1n, root: { seq: 0n, items: [] } };
}

/** `tree` as a bbolt file whose current transaction is tree.txid + 1. */
export function writeTree(tree: Tree): Buffer {
  const { pageSize } = tree;
  const nodes: Array<{ id: bigint; buf: Buffer }> = [];
  // Pages 0 and 1: meta; 2: the freelist; the buckets from 3.
  let next = 3n;
  const place = (b: Bucket): bigint => {
    const elements = b.items.map((it) => {
      if (!it.bucket) return { flags: 0, key: it.key, value: it.value ?? Buffer.alloc(0) };
      const header = Buffer.alloc(16);
      header.writeBigUInt64LE(place(it.bucket), 0);
      header.writeBigUInt64LE(it.bucket.seq, 8);
      return { flags: BUCKET_LEAF, key: it.key, value: header };
    });
    elements.sort((a, b) => Buffer.compare(a.key, b.key));
    if (elements.length > 0xffff) throw new BadDb(`a bucket of ${elements.length} keys`);
    const size = HEADER + ELEMENT * elements.length + elements.reduce((n, e) => n + e.key.length + e.value.length, 0);
    const pages = Math.max(1, Math.ceil(size / pageSize));
    const id = next;
    next += BigInt(pages);
    const buf = Buffer.alloc(pages * pageSize);
    buf.writeBigUInt64LE(id, 0);
    buf.writeUInt16LE(LEAF, 8);
    buf.writeUInt16LE(elements.length, 10);
    buf.writeUInt32LE(pages - 1, 12);
    let data = HEADER + ELEMENT * elements.length;
    for (const [i, e] of elements.entries()) {
      const at = HEADER + i * ELEMENT;
      buf.writeUInt32LE(e.flags, at);
      buf.writeUInt32LE(data - at, at + 4);
      buf.writeUInt32LE(e.key.length, at + 8);
      buf.writeUInt32LE(e.value.length, at + 12);
      e.key.copy(buf, data);
      e.value.copy(buf, data + e.key.length);
      data += e.key.length + e.value.length;
    }
    nodes.push({ id, buf });
    return id;
  };
  const root = place(tree.root);
  const out = Buffer.alloc(Number(next) * pageSize);
  const txid = tree.txid + 1n;
  for (const page of [0, 1]) {
    const off = page * pageSize;
    out.writeBigUInt64LE(BigInt(page), off);
    out.writeUInt16LE(META, off + 8);
    const m = off + HEADER;
    out.writeUInt32LE(MAGIC, m);
    out.writeUInt32LE(VERSION, m + 4);
    out.writeUInt32LE(pageSize, m + 8);
    out.writeUInt32LE(0, m + 12);
    out.writeBigUInt64LE(root, m + 16);
    out.writeBigUInt64LE(tree.root.seq, m + 24);
    out.writeBigUInt64LE(2n, m + 32);
    out.writeBigUInt64LE(next, m + 40);
    // bbolt writes transaction T's meta to page T % 2: this one's, and the one before it on the other page.
    out.writeBigUInt64LE(BigInt(page) === txid % 2n ? txid : txid - 1n, m + 48);
    out.writeBigUInt64LE(fnv1a64(out.subarray(m, m + META_CHECKED)), m + META_CHECKED);
  }
  out.writeBigUInt64LE(2n, 2 * pageSize);
  out.writeUInt16LE(FREELIST, 2 * pageSize + 8);
  for (const n of nodes) n.buf.copy(out, Number(n.id) * pageSize);
  return out;
}

function child(b: Bucket, name: string, create: boolean): Bucket | null {
  const key = Buffer.from(name, "latin1");
  const found = b.items.find((it) => it.key.equals(key));
  if (found) {
    if (!found.bucket) throw new BadDb(`${name} is a value, not a bucket`);
    return found.bucket;
  }
  if (!create) return null;
  const made: Bucket = { seq: 0n, items: [] };
  b.items.push({ key, value: null, bucket: made });
  return made;
}

function put(b: Bucket, key: Buffer, value: Buffer): void {
  const found = b.items.find((it) => it.key.equals(key));
  if (found?.bucket) throw new BadDb("a key that names a bucket");
  if (found) found.value = value;
  else b.items.push({ key, value, bucket: null });
}

/** An address as podman's bucket keys hold it: 4 bytes (IPv4), 16 (IPv6). */
export function ipKey(ip: string): Buffer {
  const parsed = parseIp(ip);
  if (!parsed) throw new BadDb(`${ip} is not an address`);
  const bytes = parsed.family === 4 ? 4 : 16;
  const out = Buffer.alloc(bytes);
  let v = parsed.value;
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** Records `id`'s addresses on `network`, each in its subnet's bucket, as podman records a container's. */
export function allocate(root: Bucket, network: string, id: string, addresses: Array<{ ip: string; subnet: string }>): void {
  const net = child(root, network, true)!;
  for (const a of addresses) put(child(net, a.subnet, true)!, ipKey(a.ip), Buffer.from(id, "latin1"));
  put(child(net, "ids", true)!, Buffer.from(id, "latin1"), Buffer.from(JSON.stringify(addresses.map((a) => a.ip))));
}

/** Removes every entry of `id` on `network` (its addresses in every subnet bucket, its ids entry). True when something was removed. */
export function release(root: Bucket, network: string, id: string): boolean {
  const net = child(root, network, false);
  if (!net) return false;
  const key = Buffer.from(id, "latin1");
  let removed = false;
  for (const it of net.items) {
    if (!it.bucket) continue;
    const before = it.bucket.items.length;
    const ids = it.key.toString("latin1") === "ids";
    it.bucket.items = it.bucket.items.filter((e) => e.bucket || (ids ? !e.key.equals(key) : !(e.value?.equals(key) && e.key.toString("latin1") !== "lastIP")));
    removed ||= it.bucket.items.length !== before;
  }
  return removed;
}

/**
 * Changes podman's ipam.db at `path` with `change` (which says whether it
 * changed anything): under an exclusive flock on the file, waiting up to
 * `waitMs` for podman's; written to a new file and renamed over it. A file
 * that does not exist is made only by a change that adds (`create`).
 */
export async function updateIpamDb(path: string, change: (root: Bucket) => boolean, o: { create: boolean; waitMs?: number }): Promise<void> {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW | (o.create ? constants.O_CREAT : 0), 0o600);
  } catch (e) {
    if (!o.create && (e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  const tmp = `${dirname(path)}/.ipam.db.burrow-${process.pid}`;
  try {
    await flockWithin(fd, LOCK.EX, o.waitMs ?? 1000);
    const st = fstatSync(fd);
    if (!st.isFile()) throw new BadDb("not a regular file");
    if (st.size > MAX_BYTES) throw new BadDb(`${st.size} bytes`);
    const tree = st.size ? readTree(readFileSync(fd)) : emptyTree();
    if (!change(tree.root)) return;
    const bytes = writeTree(tree);
    rmSync(tmp, { force: true });
    const out = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, st.mode & 0o777);
    try {
      for (let done = 0; done < bytes.length; ) done += writeSync(out, bytes, done, bytes.length - done);
      fsyncSync(out);
    } finally {
      closeSync(out);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  } finally {
    closeSync(fd);
  }
}
