// Small TCP clients for forwarder tests: they write with backpressure, can
// half-close, and collect or hash everything the server sends until it closes.
// Only ever pointed at loopback addresses.
import { fill } from "./pattern.ts";

type Received = { chunks: Uint8Array[]; bytes: number; hash: Bun.CryptoHasher | undefined };

function concat(chunks: Uint8Array[]): Uint8Array {
  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/**
 * Connects to host:port, sends `total` bytes produced by `produce(offset, max)`
 * (or nothing), then shuts down its write side unless `halfClose` is false, and
 * resolves with what came back once the server closed.
 */
export function transfer(opts: {
  host?: string;
  port: number;
  total: number;
  produce?: (offset: number, max: number) => Uint8Array;
  halfClose?: boolean;
  keep?: boolean;
  hash?: boolean;
  onOpen?: (s: Bun.Socket<undefined>) => void;
}): Promise<{ data: Uint8Array; bytes: number; hash: string | undefined }> {
  const { host = "127.0.0.1", port, total, produce, halfClose = true, keep = true } = opts;
  const got: Received = { chunks: [], bytes: 0, hash: opts.hash ? new Bun.CryptoHasher("sha256") : undefined };
  let sent = 0;
  let current: Uint8Array | undefined;
  let currentOff = 0;
  return new Promise((resolve, reject) => {
    const pump = (s: Bun.Socket<undefined>) => {
      for (;;) {
        if (!current || currentOff >= current.byteLength) {
          if (sent >= total) {
            if (halfClose) s.shutdown();
            return;
          }
          current = produce!(sent, total - sent);
          currentOff = 0;
        }
        const n = s.write(current, currentOff, current.byteLength - currentOff);
        if (n <= 0) return;
        currentOff += n;
        sent += n;
        if (currentOff < current.byteLength) return;
      }
    };
    Bun.connect({
      hostname: host,
      port,
      allowHalfOpen: true,
      socket: {
        open(s) {
          opts.onOpen?.(s);
          pump(s);
        },
        drain: pump,
        data(_s, d) {
          got.bytes += d.byteLength;
          if (got.hash) got.hash.update(d);
          if (keep) got.chunks.push(d);
        },
        close(_s, err) {
          if (err) reject(err);
          else resolve({ data: concat(got.chunks), bytes: got.bytes, hash: got.hash?.digest("hex") });
        },
        error(_s, err) {
          reject(err);
        },
        connectError(_s, err) {
          reject(err);
        },
      },
    }).catch(reject);
  });
}

/** A produce() for transfer() that sends the bytes of `data`. */
export function fromBuffer(data: Uint8Array): (offset: number, max: number) => Uint8Array {
  return (offset, max) => data.subarray(offset, offset + Math.min(max, 256 * 1024));
}

/** A produce() for transfer() that sends test/helpers/pattern.ts bytes. */
export function fromPattern(): (offset: number, max: number) => Uint8Array {
  const buf = new Uint8Array(1 << 20);
  return (offset, max) => fill(buf, offset, Math.min(max, buf.byteLength));
}
