// The daemon's log writer (src/daemon/log-copy.ts) with a bound: whatever the
// chunks (lines split across them, chunks larger than the bound), the two
// files hold an unbroken run of the newest whole lines, within the bound.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import fc from "fast-check";
import { LogWriter } from "../../src/daemon/log-copy.ts";
import { LineJoiner, parseRecord, splitLines, stampChunk } from "../../src/sandbox-log.ts";

let dir = "";
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The lines `logs` would print: the rotated file, then the current one, joined. */
function readBack(path: string): string[] {
  const joiner = new LineJoiner();
  const out: string[] = [];
  for (const file of [`${path}.1`, path]) {
    if (!existsSync(file)) continue;
    for (const line of splitLines(readFileSync(file)).lines) {
      const r = parseRecord(line);
      if (!r) throw new Error(`not a record: ${Buffer.from(line).toString()}`);
      const l = joiner.push(r);
      if (l) out.push(Buffer.from(l.text).toString().trimEnd());
    }
  }
  return out;
}

describe("LogWriter with a bound", () => {
  test("property: lines cut anywhere between chunks come back whole, newest last, contiguous, within the bound", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 64, max: 256 }), (cuts, kib) => {
        dir = mkdtempSync(`${tmpdir()}/burrow-logw-`);
        const path = `${dir}/ctr.log`;
        const max = kib * 1024;
        const w = new LogWriter(path, max);
        // seq 1 N as one byte stream, cut into chunks at arbitrary places.
        const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `${i + 1}\n`).join(""));
        let at = 0;
        for (const n of cuts) {
          if (at >= text.length) break;
          w.write(stampChunk(text.subarray(at, Math.min(at + n, text.length)), "stdout", "2026-12-04T15:27:08.123456000Z"));
          at += n;
        }
        if (at < text.length) w.write(stampChunk(text.subarray(at), "stdout", "2026-12-04T15:27:08.123456000Z"));
        w.close();
        const lines = readBack(path).map(Number);
        expect(lines.at(-1)).toBe(40_000);
        expect(lines.every((n, i) => i === 0 || n === lines[i - 1]! + 1)).toBe(true);
        const size = statSync(path).size + (existsSync(`${path}.1`) ? statSync(`${path}.1`).size : 0);
        expect(size).toBeLessThanOrEqual(max);
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 60 },
    );
  });
});
