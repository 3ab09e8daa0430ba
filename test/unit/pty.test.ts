// src/sys/pty.ts against the real kernel: a pty pair, its window size, and
// raw mode on the slave side (no mocks: openpty and the ioctls are cheap).
import { afterEach, expect, test } from "bun:test";
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { isatty } from "node:tty";
import { getWinSize, makeRaw, openPty, restoreTerminal, setWinSize } from "../../src/sys/pty.ts";

const open: number[] = [];
afterEach(() => {
  for (const fd of open.splice(0)) closeSync(fd);
});

function pair(size?: { rows: number; cols: number }) {
  const p = openPty(size);
  open.push(p.master, p.slave);
  return p;
}

/** Writes `input` on the slave and reads what the master gets back. */
function roundTrip(p: { master: number; slave: number }, input: string): string {
  writeSync(p.slave, input);
  const buf = Buffer.alloc(256);
  const n = readSync(p.master, buf, 0, buf.length, null);
  return buf.subarray(0, n).toString("latin1");
}

test("openPty gives a terminal pair of the asked size", () => {
  const p = pair({ rows: 33, cols: 101 });
  expect(isatty(p.slave)).toBe(true);
  expect(getWinSize(p.slave)).toEqual({ rows: 33, cols: 101 });
  expect(getWinSize(p.master)).toEqual({ rows: 33, cols: 101 });
});

test("setWinSize on the master is what the slave side reads", () => {
  const p = pair();
  setWinSize(p.master, { rows: 52, cols: 123 });
  expect(getWinSize(p.slave)).toEqual({ rows: 52, cols: 123 });
});

test("getWinSize of something that is not a terminal is null", () => {
  const fd = openSync("/dev/null", "r");
  open.push(fd);
  expect(getWinSize(fd)).toBeNull();
});

test("makeRaw turns off output processing (\\n stays \\n) and restoreTerminal brings it back", () => {
  const p = pair();
  expect(roundTrip(p, "a\n")).toBe("a\r\n");
  const saved = makeRaw(p.slave);
  expect(roundTrip(p, "b\n")).toBe("b\n");
  restoreTerminal(p.slave, saved);
  expect(roundTrip(p, "c\n")).toBe("c\r\n");
});
