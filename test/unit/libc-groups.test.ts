// src/sys/libc.ts opens its symbols in groups, on first use (issue 17 item 2).
import { expect, test } from "bun:test";
import { check, errno, libc, SysError } from "../../src/sys/libc.ts";
import { isTerminal } from "../../src/sys/pty.ts";

test("every symbol is callable through libc.symbols, whichever group it is in", () => {
  const names = Object.keys(libc.symbols);
  expect(names.length).toBeGreaterThan(50);
  expect(new Set(names).size).toBe(names.length);
  for (const n of ["geteuid", "socket", "unshare", "openpty", "isatty"]) expect(typeof (libc.symbols as Record<string, unknown>)[n]).toBe("function");
  expect(libc.symbols.geteuid()).toBe(process.geteuid!());
});

test("errno after a failed call in a group opened by that call is the call's", () => {
  // epoll_ctl(-1, EPOLL_CTL_DEL, ...) is EBADF (9); the relay group is opened by this very
  // access (no other test touches it), after the call's arguments and before
  // the call, so the read of errno runs no dlopen.
  expect(libc.symbols.epoll_ctl(-1, 2, -1, null)).toBe(-1);
  expect(errno()).toBe(9);
  expect(() => check("close", libc.symbols.close(-1))).toThrow(SysError);
});

test("isTerminal: /dev/null is no terminal", () => {
  const fs = require("node:fs") as typeof import("node:fs");
  const fd = fs.openSync("/dev/null", "r");
  try {
    expect(isTerminal(fd)).toBe(false);
  } finally {
    fs.closeSync(fd);
  }
});
