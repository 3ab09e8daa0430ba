// A deterministic, non-repeating-looking byte stream for transfer tests: the
// byte at stream offset `o` is BLOCK[(o + 4099 * floor(o / BLOCK.length)) % BLOCK.length],
// so every MiB differs from the last and a lost, doubled or reordered chunk
// changes the hash. Filled with memcpy-sized runs: fast enough for GiBs.
const SIZE = 1 << 20;
const BLOCK = new Uint8Array(SIZE);
{
  let x = 0x9e3779b9;
  for (let i = 0; i < SIZE; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    BLOCK[i] = x & 0xff;
  }
}

/** Fills buf[0..len) with the stream bytes at offsets [offset, offset+len); returns that view. */
export function fill(buf: Uint8Array, offset: number, len: number): Uint8Array {
  let done = 0;
  while (done < len) {
    const o = offset + done;
    const blockNo = Math.floor(o / SIZE);
    const within = o % SIZE;
    const start = (within + 4099 * blockNo) % SIZE;
    const run = Math.min(len - done, SIZE - within, SIZE - start);
    buf.set(BLOCK.subarray(start, start + run), done);
    done += run;
  }
  return buf.subarray(0, len);
}

/** sha256 (hex) of the first `n` bytes of the stream. */
export function patternHash(n: number): string {
  const h = new Bun.CryptoHasher("sha256");
  const buf = new Uint8Array(SIZE);
  for (let o = 0; o < n; o += SIZE) h.update(fill(buf, o, Math.min(SIZE, n - o)));
  return h.digest("hex");
}
