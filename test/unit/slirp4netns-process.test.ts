import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BurrowError } from "../../src/errors.ts";
import { parseSlirp4netnsMode } from "../../src/net/slirp4netns/options.ts";
import { parseSlirp4netnsHelp, type Slirp4netnsFeatures } from "../../src/net/slirp4netns/probe.ts";
import { slirp4netnsArgs, slirp4netnsCommand, slirp4netnsFailure, startSlirp4netns, tailLines } from "../../src/net/slirp4netns/process.ts";

const FULL_HELP =
  "--mtu --enable-ipv6 --api-socket --cidr --disable-host-loopback --netns-type --enable-sandbox --enable-seccomp --outbound-addr --outbound-addr6";
const features = parseSlirp4netnsHelp("/usr/bin/slirp4netns", FULL_HELP, "slirp4netns version 1.2.0");
const mode = (m: string) => parseSlirp4netnsMode(m, { interfaceExists: () => true })!;
const netnsPath = "/run/burrow/netns/abc";

describe("slirp4netnsArgs", () => {
  test("defaults, in podman v3's order", () => {
    expect(slirp4netnsArgs({ netnsPath, options: mode("slirp4netns"), features })).toEqual([
      "--disable-host-loopback",
      "--mtu=65520",
      "--enable-sandbox",
      "--enable-seccomp",
      "--configure",
      "--ready-fd=3",
      "--netns-type=path",
      netnsPath,
      "tap0",
    ]);
  });

  test("every option", () => {
    const options = mode("slirp4netns:cidr=10.5.0.0/16,allow_host_loopback=true,enable_ipv6=true,outbound_addr=10.1.1.1,outbound_addr6=eth0,mtu=1500");
    expect(slirp4netnsArgs({ netnsPath, options, features, apiSocketPath: "/run/x/api.sock", tapName: "tap1", sandbox: false })).toEqual([
      "--mtu=1500",
      "--enable-seccomp",
      "--cidr=10.5.0.0/16",
      "--enable-ipv6",
      "--outbound-addr=10.1.1.1",
      "--outbound-addr6=eth0",
      "--api-socket",
      "/run/x/api.sock",
      "--configure",
      "--ready-fd=3",
      "--netns-type=path",
      netnsPath,
      "tap1",
    ]);
  });

  test("flags the binary lacks are left out", () => {
    const bare = parseSlirp4netnsHelp("/old/slirp4netns", "--netns-type", "");
    expect(slirp4netnsArgs({ netnsPath, options: mode("slirp4netns"), features: bare })).toEqual([
      "--configure",
      "--ready-fd=3",
      "--netns-type=path",
      netnsPath,
      "tap0",
    ]);
  });

  test("never an exit fd: sandboxes outlive a daemon restart", () => {
    const args = slirp4netnsArgs({ netnsPath, options: mode("slirp4netns"), features });
    expect(args.some((a) => a === "-e" || a.startsWith("--exit-fd"))).toBe(false);
  });
});

describe("slirp4netnsCommand", () => {
  test("the sandbox runs under unshare --mount --propagation private", () => {
    const cmd = slirp4netnsCommand({ netnsPath, options: mode("slirp4netns"), features }, "/usr/bin/unshare", 0);
    expect(cmd.slice(0, 6)).toEqual(["/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/usr/bin/slirp4netns"]);
    expect(cmd).toContain("--enable-sandbox");
  });
  test("without unshare(1), no sandbox", () => {
    const cmd = slirp4netnsCommand({ netnsPath, options: mode("slirp4netns"), features }, null, 0);
    expect(cmd[0]).toBe("/usr/bin/slirp4netns");
    expect(cmd).not.toContain("--enable-sandbox");
  });
  test("not uid 0: no wrapper (unshare -m would fail)", () => {
    const cmd = slirp4netnsCommand({ netnsPath, options: mode("slirp4netns"), features }, "/usr/bin/unshare", 1000);
    expect(cmd[0]).toBe("/usr/bin/slirp4netns");
    expect(cmd).toContain("--enable-sandbox");
  });
  test("the enter helper's -P, when the daemon has it, makes the mount namespace instead of unshare(1)", () => {
    const privateMounts = ["/proc/self/fd/64", "-P", "--"];
    const cmd = slirp4netnsCommand({ netnsPath, options: mode("slirp4netns"), features, privateMounts }, "/usr/bin/unshare", 0);
    expect(cmd.slice(0, 4)).toEqual([...privateMounts, "/usr/bin/slirp4netns"]);
    expect(cmd).toContain("--enable-sandbox");
    expect(cmd).not.toContain("/usr/bin/unshare");
    // Not uid 0, or the sandbox off: neither wrapper.
    expect(slirp4netnsCommand({ netnsPath, options: mode("slirp4netns"), features, privateMounts }, "/usr/bin/unshare", 1000)[0]).toBe("/usr/bin/slirp4netns");
    expect(slirp4netnsCommand({ netnsPath, options: mode("slirp4netns"), features, privateMounts, sandbox: false }, null, 0)[0]).toBe("/usr/bin/slirp4netns");
  });
  test("sandbox off: slirp4netns directly", () => {
    const cmd = slirp4netnsCommand({ netnsPath, options: mode("slirp4netns"), features, sandbox: false }, "/usr/bin/unshare");
    expect(cmd[0]).toBe("/usr/bin/slirp4netns");
    expect(cmd).not.toContain("--enable-sandbox");
  });
});

describe("failure messages", () => {
  test("tailLines keeps the last lines and drops the usage text", () => {
    expect(tailLines("a\n\nb\nc\n", 2)).toBe("b; c");
    expect(tailLines("bad option\nUsage: /usr/bin/slirp4netns [OPTION]...\n-c, --configure\n")).toBe("bad option");
  });

  test("/dev/net/tun permission: names the cause and the fix", () => {
    const m = slirp4netnsFailure("for /x exited with code 1 before it was ready", 'open("/dev/net/tun"): Permission denied\nchild failed(1)\n', 0o600);
    expect(m).toBe(
      'slirp4netns cannot open /dev/net/tun: the device is mode 0600 and must be readable and writable by every user; run "chmod 0666 /dev/net/tun" as root, as distributions ship it (slirp4netns said: open("/dev/net/tun"): Permission denied; child failed(1))',
    );
  });

  test("missing tun device", () => {
    expect(slirp4netnsFailure("x", 'open("/dev/net/tun"): No such file or directory\n')).toMatch(/modprobe tun/);
  });

  test("sandbox failure", () => {
    expect(slirp4netnsFailure("exited", "cannot pivot_root to /tmp\ncreate_sandbox failed\n")).toMatch(/--enable-sandbox failed/);
  });

  test("silence", () => {
    expect(slirp4netnsFailure("was not ready after 5 ms", "")).toBe("slirp4netns was not ready after 5 ms (slirp4netns printed nothing)");
  });
});

describe("startSlirp4netns with stand-in binaries", () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-slirp-proc-"));
  const stops: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const stop of stops) await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const fake = (name: string, script: string): Slirp4netnsFeatures => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${script}\n`);
    chmodSync(path, 0o755);
    // No sandbox flag: the stand-ins run directly, not under unshare.
    return { ...parseSlirp4netnsHelp(path, "--netns-type --mtu --api-socket", "slirp4netns version 0.0.1-test") };
  };
  const options = mode("slirp4netns");

  test("ready: resolves; stop() kills it and removes the API socket", async () => {
    const features = fake("ready", `while [ "$1" != --api-socket ]; do shift; done; touch "$2"; echo started >&2; printf 1 >&3; exec sleep 30`);
    const apiSocketPath = join(dir, "fake-api.sock");
    const p = await startSlirp4netns({ netnsPath, options, features, apiSocketPath, logPath: join(dir, "ready.log") });
    stops.push(p.stop);
    expect(p.pid).toBeGreaterThan(0);
    expect(readFileSync(join(dir, "ready.log"), "utf8")).toBe("started\n");
    expect(existsSync(apiSocketPath)).toBe(true);
    await p.stop();
    await p.stop(); // idempotent
    expect(p.proc.signalCode).toBe("SIGTERM");
    expect(existsSync(apiSocketPath)).toBe(false);
  });

  test("timeout: kills it and says so", async () => {
    const features = fake("hang", `echo "still thinking" >&2; exec sleep 30`);
    const started = Date.now();
    let err: unknown;
    try {
      await startSlirp4netns({ netnsPath, options, features, logPath: join(dir, "hang.log"), readyTimeoutMs: 200 });
    } catch (e) {
      err = e;
    }
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err).toBeInstanceOf(BurrowError);
    expect((err as Error).message).toBe(`slirp4netns for ${netnsPath} was not ready after 200 ms (slirp4netns said: still thinking)`);
  });

  test("early exit with the tun error", async () => {
    const features = fake("tun", `echo 'open("/dev/net/tun"): Permission denied' >&2; echo 'child failed(1)' >&2; exit 1`);
    let err: unknown;
    try {
      await startSlirp4netns({ netnsPath, options, features, logPath: join(dir, "tun.log") });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BurrowError);
    expect((err as Error).message).toMatch(/^slirp4netns cannot open \/dev\/net\/tun: .*chmod 0666 \/dev\/net\/tun/);
  });

  test("early exit, plain", async () => {
    const features = fake("exit3", `echo "no luck" >&2; exit 3`);
    await expect(startSlirp4netns({ netnsPath, options, features, logPath: join(dir, "exit3.log") })).rejects.toThrow(
      `slirp4netns for ${netnsPath} exited with code 3 before it was ready (slirp4netns said: no luck)`,
    );
  });

  test("an option the binary lacks is refused before spawning", async () => {
    const features = fake("old", `touch ${join(dir, "old-ran")}; exit 1`);
    await expect(startSlirp4netns({ netnsPath, options: mode("slirp4netns:enable_ipv6=true"), features, logPath: join(dir, "old.log") })).rejects.toThrow(
      /option enable_ipv6=true needs --enable-ipv6, which slirp4netns 0\.0\.1-test/,
    );
    expect(existsSync(join(dir, "old-ran"))).toBe(false);
  });
});
