// burrow doctor and the setup errors users hit first, as the test user.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { describeWhen } from "../helpers/requirements.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping doctor integration tests: ${why}`);

describeWhen(why)("doctor (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("on the prepared machine every check passes, as JSON", async () => {
    const r = await t.burrow(["doctor", "--format", "json"]);
    const report = JSON.parse(r.stdout);
    expect(report.checks.filter((c: { level: string }) => c.level !== "ok")).toEqual([]);
    expect(report.ok).toBe(true);
    expect(r.code).toBe(0);
    const names = report.checks.map((c: { check: string }) => c.check);
    for (const n of ["XDG_RUNTIME_DIR", "/etc/subuid", "newuidmap", "/dev/net/tun", "slirp4netns", "CNI plugins"]) expect(names).toContain(n);
  });

  test("without XDG_RUNTIME_DIR: doctor fails with the fix, and commands say what to do", async () => {
    const env = { XDG_RUNTIME_DIR: undefined, BURROW_RUNTIME_DIR: undefined };
    const d = await t.burrow(["doctor"], { env });
    expect(d.code).toBe(125);
    expect(d.stdout).toMatch(/FAIL\s+XDG_RUNTIME_DIR\s+not set/);
    expect(d.stdout).toContain("export XDG_RUNTIME_DIR=/run/user/");
    const r = await t.burrow(["run", "--rm", "--", "true"], { env });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("XDG_RUNTIME_DIR is not set");
    expect(r.stderr).toContain("export XDG_RUNTIME_DIR=/run/user/");
  });

  test("a daemon that cannot start says why, and leaves no holder or daemon behind", async () => {
    const r = await t.burrow(["ps"], { env: { BURROW_STATE_DIR: "/proc/1/burrow-cannot-write-here" } });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("the burrow daemon did not start");
    expect(r.stderr).toContain("/proc/1/burrow-cannot-write-here");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    // dispose() (afterEach) fails on any leftover process of this context
  });
});
