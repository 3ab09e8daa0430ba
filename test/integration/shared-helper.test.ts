// Issue 10 item 5: the rootless bridge networks' shared slirp4netns is
// supervised like a sandbox's. Killing it used to be reported nowhere and
// left every rootless bridge sandbox without outside connectivity; now the
// daemon reports it (`burrow events`) and starts a new one for the same
// namespace, whose tap0 is configured again. Rootless only: rootful bridge
// networks have no shared helper (CNI runs in the host's, here the test's,
// namespace). Real binary and slirp4netns, ends with the leak check.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { listPids } from "../helpers/netns.ts";
import { eventually } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping shared-helper integration tests: ${why}`);

/** The live slirp4netns serving this context's rootless CNI namespace. */
function sharedSlirp(t: BurrowContext): number[] {
  const pin = `${t.dirs.runtimeDir}/rootless-netns/net`;
  return listPids().filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const zombie = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
      return !zombie && argv.some((a) => a.endsWith("slirp4netns")) && argv.includes(pin);
    } catch {
      return false;
    }
  });
}

const until = (cond: () => boolean | Promise<boolean>, ms = 5000) => eventually(cond, ms);

describe.skipIf(!!why)("the rootless bridge networks' shared slirp4netns (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  const inRootlessNetns = (cmd: string[]) => t.burrow(["unshare", "--", "nsenter", `--net=${t.dirs.runtimeDir}/rootless-netns/net`, "--", ...cmd]);

  test("killed: reported, restarted for the same namespace, tap0 configured again; gone with the last sandbox", async () => {
    await t.burrowOk(["run", "-d", "--network", "bridge", "--name", "b1", "--", "sleep", "300"]);
    const [first] = sharedSlirp(t);
    expect(first).toBeGreaterThan(0);
    process.kill(first!, "SIGKILL");

    // Reported (burrow events) once the new one is up.
    const restartEvent = async () => {
      const out = await t.burrowOk(["events", "--stream=false", "--format", "json"]);
      const events = out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)) as { type: string; attributes: Record<string, unknown> }[];
      return events.find((e) => e.type === "network-helper-restarted") ?? null;
    };
    expect(await until(async () => (await restartEvent()) !== null)).toBe(true);
    const restarted = (await restartEvent())!;
    const [second] = sharedSlirp(t);
    expect(second).toBeGreaterThan(0);
    expect(second).not.toBe(first);
    expect(restarted.attributes).toMatchObject({ helper: "slirp4netns", scope: "rootless-netns", oldPid: first, pid: second });
    // The new one configured tap0 in the namespace: address and default route are back.
    const addr = JSON.parse((await inRootlessNetns(["ip", "-j", "-4", "addr", "show", "tap0"])).stdout) as { addr_info: { local: string }[] }[];
    expect(addr[0]?.addr_info.map((a) => a.local)).toEqual(["10.0.2.100"]);
    const route = await inRootlessNetns(["ip", "-4", "route", "show", "default"]);
    expect(route.stdout).toContain("via 10.0.2.2 dev tap0");

    // The sandbox still works, and its removal takes the namespace and the new slirp4netns along.
    expect(await t.burrowOk(["exec", "b1", "--", "ip", "-4", "route", "show", "default"])).toContain("default via");
    await t.burrowOk(["rm", "-f", "b1"]);
    expect(await until(() => sharedSlirp(t).length === 0)).toBe(true);
  }, 60_000);
});
