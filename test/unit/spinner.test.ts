// The first-start spinner (src/cli/_spinner.ts): only on a terminal, only when slow, wiped after.
import { expect, test } from "bun:test";
import { spinWhile } from "../../src/cli/_spinner.ts";

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, s: { isTTY, write: (x: string) => writes.push(x) } as unknown as NodeJS.WriteStream };
}

test("a slow start on a terminal spins, then wipes its line", async () => {
  const { writes, s } = stream(true);
  expect(
    await spinWhile(
      "starting",
      Bun.sleep(800).then(() => 7),
      s,
    ),
  ).toBe(7);
  expect(writes.length).toBeGreaterThanOrEqual(2);
  expect(writes[0]).toMatch(/^\r\S starting$/);
  expect(writes.at(-1)).toBe("\r\x1b[K");
});

test("a quick start, or no terminal, writes nothing", async () => {
  const quick = stream(true);
  await spinWhile("starting", Bun.sleep(50), quick.s);
  expect(quick.writes).toEqual([]);
  const piped = stream(false);
  await spinWhile("starting", Bun.sleep(800), piped.s);
  expect(piped.writes).toEqual([]);
});

test("a failure still wipes the line and passes the error on", async () => {
  const { writes, s } = stream(true);
  await expect(
    spinWhile(
      "starting",
      Bun.sleep(700).then(() => Promise.reject(new Error("boom"))),
      s,
    ),
  ).rejects.toThrow("boom");
  expect(writes.at(-1)).toBe("\r\x1b[K");
});
