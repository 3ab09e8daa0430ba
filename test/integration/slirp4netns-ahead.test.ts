// slirp4netns started ahead (src/net/slirp4netns/warm.ts): after a sandbox
// on slirp4netns, the daemon makes the next one's network in the background
// (a pinned netns with slirp4netns attached), and the next create with the
// same options joins it and adopts the process. dist/burrow with the real
// slirp4netns, rootless and rootful; every test ends with the leak check.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { listPids } from "../helpers/netns.ts";
import { argvOf, freePort } from "../helpers/sys.ts";
import { until } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping the slirp4netns-ahead tests: ${why}`);

interface Ahead {
  pid: number;
  /** Its pin dir, RUNTIME_DIR/pins/warm-*: named in its argv. */
  dir: string;
}

/** The slirp4netns processes of this context started ahead: those whose argv names a pin under pins/warm-*. */
function aheadOf(t: BurrowContext): Ahead[] {
  const prefix = `${t.dirs.runtimeDir}/pins/warm-`;
  return listPids().flatMap((pid) => {
    const argv = argvOf(pid);
    const path = argv.find((a) => a.startsWith(prefix));
    return (argv.some((a) => a.endsWith("/slirp4netns")) || argv[0]?.endsWith("slirp4netns")) && path
      ? [{ pid, dir: path.slice(0, path.lastIndexOf("/")) }]
      : [];
  });
}

function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\S+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

/** The one made ahead, once there is one (other than `not`). */
function nextAhead(t: BurrowContext, not?: number): Promise<Ahead> {
  return until(
    () => {
      const a = aheadOf(t).filter((x) => x.pid !== not);
      return a.length === 1 && existsSync(`${a[0]!.dir}/net`) ? a[0]! : null;
    },
    10_000,
    "a slirp4netns started ahead",
  );
}

for (const mode of ["rootless", "rootful"] as const) {
  describe.skipIf(!!why)(`slirp4netns started ahead (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("the next sandbox on slirp4netns adopts the one made ahead: its own netns, tap0 configured, and it dies with the sandbox", async () => {
      const [p1, p2] = [await freePort(), await freePort()];
      await t.burrowOk(["run", "-d", "--name", "first", "--network", "slirp4netns", "-p", `127.0.0.1:${p1}:80`, "--", "sleep", "600"]);
      const ahead = await nextAhead(t);
      const firstNet = (await t.burrowOk(["exec", "first", "--", "readlink", "/proc/self/ns/net"])).trim();

      await t.burrowOk(["run", "-d", "--name", "second", "--network", "slirp4netns", "-p", `127.0.0.1:${p2}:80`, "--", "sleep", "600"]);
      // Adopted: still running, its pin gone (the sandbox's own holds the netns), and a new one made for the next sandbox.
      expect(running(ahead.pid)).toBe(true);
      expect(existsSync(ahead.dir)).toBe(false);
      const next = await nextAhead(t, ahead.pid);
      expect(next.dir).not.toBe(ahead.dir);

      // The second sandbox has a netns of its own, with the tap0 slirp4netns configured there.
      const secondNet = (await t.burrowOk(["exec", "second", "--", "readlink", "/proc/self/ns/net"])).trim();
      expect(secondNet).toMatch(/^net:\[\d+\]$/);
      expect(secondNet).not.toBe(firstNet);
      const addrs = await t.burrowOk(["exec", "second", "--", "ip", "-o", "-4", "addr", "show", "dev", "tap0"]);
      expect(addrs).toContain("10.0.2.100/24");
      expect(await t.burrowOk(["exec", "second", "--", "ip", "-o", "link", "show", "dev", "tap0"])).toContain(" mtu 65520 ");

      // The sandbox owns it now: removing the sandbox ends it; the one made for the next stays.
      await t.burrowOk(["rm", "-f", "second"]);
      await until(() => !running(ahead.pid), 5_000, `slirp4netns ${ahead.pid} to end with its sandbox`);
      expect(running(next.pid)).toBe(true);
      await t.burrowOk(["rm", "-f", "first"]);
    }, 60_000);

    test("a sandbox of other options, or of another mode, never gets it", async () => {
      await t.burrowOk(["run", "--rm", "--network", "slirp4netns", "--", "true"]);
      await nextAhead(t);
      // mtu=1500: made ahead with 65520, so a sandbox that adopted it would say so (/sys is the host's: ip asks the netns).
      expect(await t.burrowOk(["run", "--rm", "--network", "slirp4netns:mtu=1500", "--", "ip", "-o", "link", "show", "dev", "tap0"])).toContain(" mtu 1500 ");
      const ahead = await nextAhead(t);
      // --network none: a netns with loopback only.
      const dev = await t.burrowOk(["run", "--rm", "--network", "none", "--", "cat", "/proc/net/dev"]);
      expect(dev).not.toContain("tap0");
      expect(dev).toContain("lo:");
      expect(running(ahead.pid)).toBe(true);
    }, 60_000);

    test("a daemon killed with SIGKILL leaves neither the slirp4netns made ahead nor its pin once the next daemon runs", async () => {
      await t.burrowOk(["run", "--rm", "--network", "slirp4netns", "--", "true"]);
      const ahead = await nextAhead(t);
      for (const pid of daemonPids(t)) process.kill(pid, "SIGKILL");
      // The next daemon (restarted by the holder rootless, by this command rootful) sweeps both.
      await t.burrowOk(["ps", "-a"]);
      await until(() => !running(ahead.pid) && !existsSync(ahead.dir), 10_000, "the slirp4netns made ahead by the killed daemon to be gone");
    }, 60_000);

    test("the daemon's exit ends it", async () => {
      await t.burrowOk(["run", "--rm", "--network", "slirp4netns", "--", "true"]);
      const ahead = await nextAhead(t);
      for (const pid of daemonPids(t)) process.kill(pid, "SIGTERM");
      await until(
        () => daemonPids(t).length === 0 && !running(ahead.pid) && !existsSync(ahead.dir),
        10_000,
        "the daemon and its slirp4netns made ahead to end",
      );
    }, 60_000);
  });
}
