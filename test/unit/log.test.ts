// The daemon's plain logger (src/log.ts): the same lines as consola's fancy
// reporter writes into a log file, through consola's core, without Node's
// stdio streams (they cost the daemon ~6.5 MiB and two fds at its first
// message: issue 10's soak).
import { describe, expect, test } from "bun:test";
import { formatPlain } from "../../src/log.ts";
import { repoRoot } from "../helpers/env.ts";

describe("plain log lines", () => {
  test("warnings and errors get a badge, info and debug an icon, after the tag", () => {
    expect(formatPlain({ type: "warn", level: 1, tag: "burrow", args: ["killed a slirp4netns (pid 7)"] })).toBe(
      "[burrow]  WARN  killed a slirp4netns (pid 7)\n",
    );
    expect(formatPlain({ type: "error", level: 0, tag: "burrow", args: ["no live holder"] })).toBe("[burrow]  ERROR  no live holder\n");
    expect(formatPlain({ type: "info", level: 3, tag: "burrow", args: ["listening"] })).toBe("[burrow] ℹ listening\n");
    expect(formatPlain({ type: "debug", level: 4, tag: "", args: ["a", 2, { b: 1 }] })).toBe("⚙ a 2 {\n  b: 1,\n}\n");
  });

  test("an Error is written with its stack", () => {
    const e = new Error("boom");
    const line = formatPlain({ type: "error", level: 0, tag: "burrow", args: [e] });
    expect(line.startsWith("[burrow]  ERROR  Error: boom\n")).toBe(true);
    expect(line).toContain("log.test.ts");
  });
});

describe("logPlainToFd", () => {
  test("writes to the fd through consola's core and opens no stdio streams", async () => {
    const script = `
      import { readdirSync } from "node:fs";
      import { log, logPlainToFd } from "${repoRoot}/src/log.ts";
      logPlainToFd(2);
      const before = readdirSync("/proc/self/fd").length;
      log.warn("first warning");
      log.info("some info");
      log.debug("hidden at the default level");
      log.error(new Error("an error"));
      const after = readdirSync("/proc/self/fd").length;
      console.log(JSON.stringify({ before, after }));
    `;
    const p = Bun.spawnSync([process.execPath, "-e", script], { env: { ...process.env, BURROW_LOG: "" }, stdout: "pipe", stderr: "pipe" });
    const err = p.stderr.toString();
    expect(p.exitCode).toBe(0);
    expect(err.startsWith("[burrow]  WARN  first warning\n[burrow] ℹ some info\n[burrow]  ERROR  Error: an error\n")).toBe(true);
    expect(err).not.toContain("hidden");
    // consola's full entry point makes process.stdout and process.stderr: two fds more.
    const { before, after } = JSON.parse(p.stdout.toString().trim().split("\n").at(-1)!);
    expect(after).toBe(before);
  });
});
