// The slirp4netns library modules against the real slirp4netns, as root, in
// network namespaces made for the test (`ip netns add`). Traffic goes only to
// loopback and into those namespaces; everything is removed afterwards.
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BurrowError } from "../../src/errors.ts";
import { createNetns, type TestNetns } from "../helpers/netns.ts";
import { addHostFwd, listHostFwd, removeHostFwd, waitForApiSocket } from "../../src/net/slirp4netns/api.ts";
import { parseSlirp4netnsMode, slirp4netnsAddresses } from "../../src/net/slirp4netns/options.ts";
import { probeSlirp4netns, type Slirp4netnsFeatures } from "../../src/net/slirp4netns/probe.ts";
import { isOurSlirp4netns, startSlirp4netns, stopSlirp4netnsPid, type Slirp4netnsProcess } from "../../src/net/slirp4netns/process.ts";
import { freePort, sh } from "../helpers/sys.ts";
import { repoRoot } from "../helpers/env.ts";
import { buildEnterHelper } from "../../scripts/build.ts";
import { describeWhen, firstMissing, missingTools, needsRoot } from "../helpers/requirements.ts";

const missing = firstMissing(needsRoot, () => missingTools(["slirp4netns", "ip"]));

/** The enter helper for the -P case: dist's, or built now; "" without musl-gcc. */
const helper = existsSync(`${repoRoot}/dist/burrow-enter-helper`) ? `${repoRoot}/dist/burrow-enter-helper` : ((await buildEnterHelper()) ?? "");
if (!helper) console.warn("skipping slirp4netns under the enter helper's -P: no musl-gcc to build the helper (Debian: musl-tools)");

interface AddrInfo {
  ifname: string;
  mtu: number;
  operstate: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

describeWhen(missing)("slirp4netns (real, as root)", () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-slirp-test-"));
  let testNetns: TestNetns;
  let ns: string;
  let netnsPath: string;
  let features: Slirp4netnsFeatures;
  const running: Slirp4netnsProcess[] = [];

  beforeAll(async () => {
    // The shared helper names it after the run, so the suite's leak check knows it.
    testNetns = await createNetns();
    ns = testNetns.name;
    netnsPath = testNetns.path;
    features = await probeSlirp4netns();
  });
  afterEach(async () => {
    for (const p of running.splice(0)) await p.stop();
  });
  afterAll(async () => {
    try {
      expect(await testNetns.remove()).toEqual([]); // nothing left running inside
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const tap = () => (JSON.parse(sh("ip", "-n", ns, "-j", "addr", "show", "dev", "tap0")) as AddrInfo[])[0]!;

  test("configures tap0 with the default network, then stops", async () => {
    const options = parseSlirp4netnsMode("slirp4netns")!;
    const started = Date.now();
    const p = await startSlirp4netns({ netnsPath, options, features, logPath: join(dir, "default.log") });
    running.push(p);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(isOurSlirp4netns(p.pid, netnsPath)).toBe(true);
    const t = tap();
    expect(t.mtu).toBe(65520);
    expect(t.addr_info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`)).toEqual(["10.0.2.100/24"]);
    const routes = JSON.parse(sh("ip", "-n", ns, "-j", "route", "show", "default")) as Array<{ gateway: string }>;
    expect(routes[0]?.gateway).toBe("10.0.2.2");
    await p.stop();
    expect(isOurSlirp4netns(p.pid, netnsPath)).toBe(false);
    // slirp4netns's exit removes tap0 with it...
    expect(tap).toThrow(/tap0/);
    // ...but its --enable-sandbox must not have unmounted the pin (see slirp4netnsCommand).
    expect(readFileSync("/proc/self/mountinfo", "utf8")).toContain(` ${netnsPath} `);
  });

  test.skipIf(!helper)("under the enter helper's -P: its own mount namespace, tap0 configured, the pin left mounted", async () => {
    const options = parseSlirp4netnsMode("slirp4netns")!;
    const p = await startSlirp4netns({ netnsPath, options, features, logPath: join(dir, "helper.log"), privateMounts: [helper, "-P", "--"] });
    running.push(p);
    // The helper exec'd slirp4netns in place (same pid), with its sandbox on.
    expect(isOurSlirp4netns(p.pid, netnsPath)).toBe(true);
    expect(readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0")).toContain("--enable-sandbox");
    expect(
      tap()
        .addr_info.filter((a) => a.family === "inet")
        .map((a) => a.local),
    ).toEqual(["10.0.2.100"]);
    await p.stop();
    expect(readFileSync("/proc/self/mountinfo", "utf8")).toContain(` ${netnsPath} `);
    // -P's own promise: a mount namespace of its own in which no mount
    // propagates (`ip netns` made /run/netns shared in ours).
    expect(readFileSync("/proc/self/mountinfo", "utf8")).toMatch(/ shared:\d+/);
    const inside = Bun.spawnSync([helper, "-P", "--", "/bin/sh", "-c", "readlink /proc/self/ns/mnt; cat /proc/self/mountinfo"], { stderr: "pipe" });
    expect(inside.exitCode).toBe(0);
    const [ownNs = "", ...mounts] = inside.stdout.toString().trim().split("\n");
    expect(ownNs).not.toBe(readlinkSync("/proc/self/ns/mnt"));
    expect(mounts.length).toBeGreaterThan(0);
    expect(mounts.filter((m) => / shared:\d+/.test(m))).toEqual([]);
    // A program that is no absolute path is refused in one line, nothing run.
    const bad = Bun.spawnSync([helper, "-P", "--", "slirp4netns"], { stderr: "pipe" });
    expect(bad.exitCode).toBe(125);
    expect(bad.stderr.toString()).toContain("-P takes -- and a program's absolute path");
  });

  test("custom cidr and mtu", async () => {
    const options = parseSlirp4netnsMode("slirp4netns:cidr=10.99.0.0/16,mtu=1500")!;
    const p = await startSlirp4netns({ netnsPath, options, features, logPath: join(dir, "cidr.log") });
    running.push(p);
    const t = tap();
    expect(t.mtu).toBe(1500);
    const addrs = slirp4netnsAddresses(options);
    expect(t.addr_info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${addrs.tapAddress}/${addrs.prefixLength}`]);
    expect(addrs.tapAddress).toBe("10.99.0.100");
  });

  test("stopSlirp4netnsPid stops it by pid only", async () => {
    const options = parseSlirp4netnsMode("slirp4netns")!;
    const p = await startSlirp4netns({ netnsPath, options, features, logPath: join(dir, "bypid.log") });
    running.push(p);
    // A wrong netns path must not kill it.
    await stopSlirp4netnsPid(p.pid, "/run/netns/not-this-one");
    expect(isOurSlirp4netns(p.pid, netnsPath)).toBe(true);
    await stopSlirp4netnsPid(p.pid, netnsPath);
    await p.proc.exited;
    expect(isOurSlirp4netns(p.pid, netnsPath)).toBe(false);
  });

  test("an early exit reports what slirp4netns printed", async () => {
    const options = parseSlirp4netnsMode("slirp4netns")!;
    let err: unknown;
    try {
      await startSlirp4netns({ netnsPath: join(dir, "no-such-netns"), options, features, logPath: join(dir, "fail.log") });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BurrowError);
    expect((err as Error).message).toMatch(
      /^slirp4netns for \S+no-such-netns exited with code 1 before it was ready \(slirp4netns said: existing path expected when --netns-type=path: No such file or directory[;)]/,
    );
  });

  test("API socket: add, list, forward traffic, remove", async () => {
    const options = parseSlirp4netnsMode("slirp4netns:port_handler=slirp4netns")!;
    const apiSocketPath = join(dir, "api.sock");
    const p = await startSlirp4netns({ netnsPath, options, features, apiSocketPath, logPath: join(dir, "api.log") });
    running.push(p);
    expect(await waitForApiSocket(apiSocketPath)).toBe(true);

    // A web server inside the sandbox netns, on the tap address.
    const www = join(dir, "www");
    sh("mkdir", "-p", www);
    writeFileSync(join(www, "hello.txt"), "hello from the sandbox\n");
    const guestPort = 8080;
    const server = Bun.spawn(["nsenter", `--net=${netnsPath}`, "--", "busybox", "httpd", "-f", "-p", `10.0.2.100:${guestPort}`, "-h", www], {
      stdout: "ignore",
      stderr: "ignore",
    });
    try {
      const hostPort = await freePort();
      const id = await addHostFwd(apiSocketPath, {
        proto: "tcp",
        host_addr: "127.0.0.1",
        host_port: hostPort,
        guest_addr: "10.0.2.100",
        guest_port: guestPort,
      });
      expect(id).toBeGreaterThan(0);
      expect(await listHostFwd(apiSocketPath)).toEqual([
        { id, proto: "tcp", host_addr: "127.0.0.1", host_port: hostPort, guest_addr: "10.0.2.100", guest_port: guestPort },
      ]);

      let body = "";
      for (let i = 0; i < 50 && body === ""; i++) {
        try {
          body = await (await fetch(`http://127.0.0.1:${hostPort}/hello.txt`)).text();
        } catch {
          await Bun.sleep(20); // httpd may still be starting
        }
      }
      expect(body).toBe("hello from the sandbox\n");

      // The same host port twice: slirp4netns's own error comes through.
      await expect(
        addHostFwd(apiSocketPath, { proto: "tcp", host_addr: "127.0.0.1", host_port: hostPort, guest_addr: "10.0.2.100", guest_port: 81 }),
      ).rejects.toThrow(/^slirp4netns refused add_hostfwd: /);

      await removeHostFwd(apiSocketPath, id);
      expect(await listHostFwd(apiSocketPath)).toEqual([]);
      await expect(fetch(`http://127.0.0.1:${hostPort}/hello.txt`)).rejects.toThrow();
      await expect(removeHostFwd(apiSocketPath, id)).rejects.toThrow(/^slirp4netns refused remove_hostfwd: /);
    } finally {
      server.kill();
      await server.exited;
    }
    await p.stop();
    expect(existsSync(apiSocketPath)).toBe(false);
  });

  test("a missing API socket is a BurrowError naming the path", async () => {
    await expect(listHostFwd(join(dir, "nope.sock"))).rejects.toThrow(/slirp4netns API socket .*nope\.sock: list_hostfwd failed/);
  });
});
