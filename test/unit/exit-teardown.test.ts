// src/sys/exit.ts with real processes: a Bun process that ends through
// exitLeavingTeardown leaves a child sharing its memory, which holds none of
// its fds, blocks every signal it can, and ends by itself.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "burrow-exit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Pids whose command line has `marker` (the child shares its parent's memory, so its argv too). */
function withMarker(marker: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").includes(marker)) out.push(Number(e));
    } catch {}
  }
  return out;
}

function state(pid: number): string | null {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? null;
  } catch {
    return null;
  }
}

test("the exit leaves a child holding the memory, no fd and no signal, which ends by itself", async () => {
  const script = join(dir, "exit.ts");
  const module = resolve(import.meta.dir, "../../src/sys/exit.ts");
  writeFileSync(script, `import { exitLeavingTeardown } from ${JSON.stringify(module)};\nexitLeavingTeardown(7, 1_500_000);\n`);
  const marker = `burrow-exit-test-${process.pid}-${Date.now()}`;
  const p = Bun.spawn([process.execPath, script, marker], { stdout: "pipe", stderr: "pipe" });
  // The pipes end with the process, not with the child: it holds no copy.
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect({ out, err, code }).toEqual({ out: "", err: "", code: 7 });
  const children = withMarker(marker).filter((pid) => state(pid) !== "Z");
  expect(children.length).toBe(1);
  const child = children[0]!;
  expect(readdirSync(`/proc/${child}/fd`)).toEqual([]);
  const blocked = BigInt(`0x${/^SigBlk:\s+([0-9a-f]+)/m.exec(readFileSync(`/proc/${child}/status`, "utf8"))![1]}`);
  for (const sig of [1, 2, 3, 13, 14, 15, 17, 10, 12, 30]) expect((blocked >> BigInt(sig - 1)) & 1n).toBe(1n);
  // Its memory is the exited parent's: the same executable, mapped.
  expect(readFileSync(`/proc/${child}/cmdline`, "utf8")).toContain(script);
  // It ends by itself (the sleep, 1.5 s) and is reaped by whoever adopted it.
  let gone = false;
  for (let i = 0; i < 200 && !gone; i++) {
    gone = state(child) === null || withMarker(marker).length === 0;
    if (!gone) await Bun.sleep(50);
  }
  expect(gone).toBe(true);
}, 20_000);
