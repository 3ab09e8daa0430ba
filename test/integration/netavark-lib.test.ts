// The netavark library (src/net/netavark/run.ts) against the REAL netavark
// 1.17 of the sid tier (scripts/sid-root.sh), as root, with nftables.
// Nothing runs in the machine's own network namespace: two test netns play
// "the host" (where netavark makes the bridge, the firewall table and the
// port forwarding) and "the sandbox". netavark runs in the sid root, entered
// into the host netns with nsenter; both namespaces are named to it by
// /proc/PID/ns/net of a holder process, since the sid root has its own /run
// (so /run/netns/NAME is not there) but shares this machine's pids.
// netavark's --config directory is in the sid root's /var/tmp, so that it
// outlives one entry (setup and teardown are two), and is removed at the end.
//
// Rootless, as podman runs it: the test user's own user namespace with a
// network namespace of its own ("the rootless netns"), the sandbox's netns
// owned by that user namespace, and netavark run with --rootless=true as
// root of that user namespace (entered with nsenter -U -n).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BurrowError } from "../../src/errors.ts";
import { parseNetworkFile, planNetwork, readNetworks, writeNetworkFile } from "../../src/net/netavark/networks-dir.ts";
import {
  buildSetupOptions,
  type NetavarkInvocation,
  type NetavarkSpawner,
  netavarkSetup,
  netavarkTeardown,
  netavarkVersion,
} from "../../src/net/netavark/run.ts";
import type { NetworkFile } from "../../src/net/netavark/schema.ts";
import { integrationUnavailable, testUser } from "../helpers/env.ts";
import { createNetns, killPids, type TestNetns } from "../helpers/netns.ts";
import { describeWhen, firstMissing, missingTools } from "../helpers/requirements.ts";
import { prepareSidRoot, sidRootDir, sidRun, sidScript } from "../helpers/sid.ts";

const unavailable = firstMissing(integrationUnavailable(), () => missingTools(["ip", "nsenter"]));
const archiveUnreachable = unavailable ? null : await prepareSidRoot();
if (unavailable) console.warn(`skipping the netavark library tests: ${unavailable}`);
if (archiveUnreachable) console.warn(`skipping the netavark library tests: ${archiveUnreachable}`);

const NETAVARK = "/usr/lib/podman/netavark";
const AARDVARK = "/usr/lib/podman/aardvark-dns";
const fixture = (name: string) => join(import.meta.dir, "../fixtures/netavark", name);

function sh(...argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} (exit ${r.exitCode}): ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

interface Link {
  ifname: string;
  address?: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}
const links = (ns: TestNetns): Link[] => JSON.parse(sh("ip", "-n", ns.name, "-j", "addr", "show"));
const link = (ns: TestNetns, name: string) => links(ns).find((l) => l.ifname === name);
const ipv4 = (l: Link | undefined) => l?.addr_info?.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`) ?? [];

/** A process that keeps a test netns reachable as /proc/PID/ns/net from inside the sid root. */
function holder(ns: TestNetns): Bun.Subprocess {
  return Bun.spawn(["nsenter", `--net=${ns.path}`, "--", "sleep", "600"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
}

/** Runs a command in the sid root, as root, in the netns that `hostPid` is in. */
function sidInNetns(hostPid: number, argv: string[], env: Record<string, string> = {}, stdin = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  const full = [
    "bash",
    sidScript,
    "run",
    "--",
    "env",
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    "nsenter",
    `--net=/proc/${hostPid}/ns/net`,
    "--",
    ...argv,
  ];
  const p = Bun.spawn(full, { stdin: new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe" });
  return Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(([stdout, stderr, code]) => ({ code, stdout, stderr }));
}

/** The network podman 5.8 wrote (test/fixtures/netavark), DNS off: aardvark-dns would end with the sid entry. */
function fixtureNetwork(): NetworkFile {
  const parsed = parseNetworkFile("nvtest1.json", readFileSync(fixture("podman-5.8-nvtest1.json"), "utf8"));
  if (!("config" in parsed)) throw new Error(parsed.reason);
  return { ...parsed.config, dns_enabled: false };
}

/** One TCP exchange: a server in `server`'s netns answers "pong <what it read>"; the client in `client`'s connects to host:port. */
async function tcpRoundTrip(server: TestNetns, serverPort: number, client: TestNetns, host: string, port: number): Promise<string> {
  const serverScript = `const s = Bun.listen({ hostname: "0.0.0.0", port: ${serverPort}, socket: { data(sock, d) { sock.end("pong " + d.toString()); } } }); console.log("ready");`;
  const srv = Bun.spawn(["nsenter", `--net=${server.path}`, "--", process.execPath, "-e", serverScript], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  try {
    const reader = srv.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("ready");
    const clientScript = `const got = await new Promise((res, rej) => Bun.connect({ hostname: "${host}", port: ${port}, socket: { open(s) { s.write("ping"); }, data(s, d) { res(d.toString()); }, error(s, e) { rej(e); }, connectError(s, e) { rej(e); } } })); console.log(got);`;
    return sh("nsenter", `--net=${client.path}`, "--", process.execPath, "-e", clientScript).trim();
  } finally {
    srv.kill();
    await srv.exited;
  }
}

/** Where the rootful suite's netavark runs, and how it shows the host netns's firewall. */
interface RootfulTarget {
  /** Runs argv as root in the netns of `hostPid` (stdin given). */
  run(hostPid: number, argv: string[], env?: Record<string, string>, stdin?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** netavark's --config, as netavark sees it, and from here. */
  configDir(rand: string): { there: string; here: string };
  /** The firewall of the host netns as text (nft ruleset, or iptables-save). */
  firewall: string[];
  inv: Omit<NetavarkInvocation, "configDir">;
  /** What `netavark version` must say. */
  version: RegExp;
  fwDriver: string | undefined;
}

function rootfulSuite(title: string, skip: string | null, target: () => RootfulTarget): void {
  const describeIt = skip ? (name: string, fn: () => void) => test.skip(name, fn) : describeWhen(unavailable);
  if (skip && !unavailable) console.warn(`skipping "${title}": ${skip}`);
  describeIt(title, () => {
    const spaces: TestNetns[] = [];
    const holders: Bun.Subprocess[] = [];
    let host: TestNetns;
    let box: TestNetns;
    let hostPid: number;
    let boxPid: number;
    const rand = Math.random().toString(36).slice(2, 8);
    let t: RootfulTarget;
    let configDirHere: string;
    let inv: NetavarkInvocation;
    let spawner: NetavarkSpawner;

    beforeAll(async () => {
      t = target();
      const dirs = t.configDir(rand);
      configDirHere = dirs.here;
      host = await createNetns();
      box = await createNetns();
      spaces.push(host, box);
      for (const ns of [host, box]) holders.push(holder(ns));
      [hostPid, boxPid] = holders.map((h) => h.pid) as [number, number];
      for (const pid of [hostPid, boxPid]) await settled(pid);
      inv = { ...t.inv, configDir: dirs.there };
      spawner = (argv, stdin, env) => t.run(hostPid, argv, env, stdin);
    });

    afterAll(async () => {
      await killPids(holders.map((h) => h.pid));
      for (const ns of spaces) await ns.remove();
      if (configDirHere) rmSync(configDirHere, { recursive: true, force: true });
    });

    const sandboxPath = () => `/proc/${boxPid}/ns/net`;
    const firewall = async () => {
      const r = await t.run(hostPid, t.firewall);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      return r.stdout;
    };

    test("netavark version is read and validated", async () => {
      const version = await netavarkVersion(t.inv.binary, (argv, stdin, env) => t.run(hostPid, argv, env, stdin));
      expect(version.version).toMatch(t.version);
      expect(version.default_fw_driver).toBe(t.fwDriver);
    });

    test("setup then teardown of a podman-made bridge network with a static IP, a MAC and a published port", async () => {
      const network = fixtureNetwork();
      const options = buildSetupOptions({
        containerId: "b".repeat(64),
        containerName: `lib-${rand}`,
        attachments: [{ network, interfaceName: "eth0", staticIps: ["10.89.0.5"], staticMac: "02:42:0a:59:00:05", aliases: ["web"] }],
        ports: [{ hostIp: "127.0.0.1", hostPort: 18081, containerPort: 8080, protocol: "tcp" }],
      });

      const status = await netavarkSetup(inv, sandboxPath(), options, spawner);
      expect(status.nvtest1?.interfaces?.eth0).toEqual({ mac_address: "02:42:0a:59:00:05", subnets: [{ ipnet: "10.89.0.5/24", gateway: "10.89.0.1" }] });

      // The sandbox's side: eth0 with the address and MAC asked for.
      expect(ipv4(link(box, "eth0"))).toEqual(["10.89.0.5/24"]);
      expect(link(box, "eth0")?.address).toBe("02:42:0a:59:00:05");
      // The host's side: the network's bridge with the gateway address.
      expect(ipv4(link(host, network.network_interface!))).toEqual(["10.89.0.1/24"]);
      // The port forwarding works: 127.0.0.1:18081 in the host netns reaches the sandbox's port 8080.
      expect(await tcpRoundTrip(box, 8080, host, "127.0.0.1", 18081)).toBe("pong ping");
      expect(await firewall()).toContain("10.89.0.5:8080");

      await netavarkTeardown(inv, sandboxPath(), options, spawner);

      // Everything of this network and sandbox is gone: the veth, the bridge,
      // every rule and chain naming the subnet or port, netavark's
      // per-network and per-port records. netavark keeps its own empty base
      // table or chains on purpose, as it does under podman.
      expect(link(box, "eth0")).toBeUndefined();
      expect(link(host, network.network_interface!)).toBeUndefined();
      expect(links(host).map((l) => l.ifname)).toEqual(["lo"]);
      const after = await firewall();
      expect(after).not.toContain("10.89.0.");
      // Per-network chains: nv_* (nftables), NETAVARK-<hash> and NETAVARK-DN-<hash> (1.4's iptables).
      expect(after).not.toMatch(/chain nv_|NETAVARK-(DN-)?[0-9A-F]{13}/);
      expect(after).not.toContain("18081");
      for (const sub of ["networks", "ports"]) {
        const dir = join(configDirHere, "firewall", sub);
        expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
      }
    });

    test("a failed setup is one line with netavark's own message, and its rollback leaves nothing behind", async () => {
      const options = buildSetupOptions({
        containerId: "c".repeat(64),
        containerName: `lib-bad-${rand}`,
        // Not in the network's subnet 10.89.0.0/24. netavark does not check
        // that itself: it fails half-way, adding the default route via
        // 10.89.0.1, and leaves the veth pair and the bridge, which the
        // teardown netavarkSetup then runs removes. (burrow must check the
        // address first.)
        attachments: [{ network: fixtureNetwork(), interfaceName: "eth0", staticIps: ["10.77.0.5"] }],
      });
      const err = await netavarkSetup(inv, sandboxPath(), options, spawner).catch((e) => e);
      expect(err).toBeInstanceOf(BurrowError);
      expect((err as BurrowError).kind).toBe("netavark");
      expect((err as BurrowError).message).toMatch(/^netavark setup failed: .*Network is unreachable/);
      expect((err as BurrowError).message).not.toContain("\n");
      expect(link(box, "eth0")).toBeUndefined();
      expect(links(host).map((l) => l.ifname)).toEqual(["lo"]);
      expect(await firewall()).not.toContain("10.89.0.");
    });

    test("a sandbox netns that does not exist is refused by netavark in one line", async () => {
      const options = buildSetupOptions({
        containerId: "d".repeat(64),
        containerName: `lib-gone-${rand}`,
        attachments: [{ network: fixtureNetwork(), interfaceName: "eth0", staticIps: ["10.89.0.6"] }],
      });
      const err = await netavarkSetup(inv, "/proc/999999999/ns/net", options, spawner).catch((e) => e);
      expect((err as BurrowError).kind).toBe("netavark");
      expect((err as BurrowError).message).toMatch(/^netavark setup failed: .*No such file or directory/);
      expect((err as BurrowError).message).not.toContain("\n");
    });
  });
}

/** Runs `argv` on this machine, as root, in the netns of `hostPid`. */
function hostInNetns(hostPid: number, argv: string[], env: Record<string, string> = {}, stdin = "") {
  const p = Bun.spawn(["nsenter", `--net=/proc/${hostPid}/ns/net`, "--", ...argv], {
    env,
    stdin: new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  return Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(([stdout, stderr, code]) => ({ code, stdout, stderr }));
}

rootfulSuite("netavark library with the real netavark 1.17 (sid tier, as root, in test netns, nftables)", archiveUnreachable, () => ({
  run: sidInNetns,
  configDir: (rand) => {
    const there = `/var/tmp/burrow-netavark-lib-${rand}`;
    return { there, here: join(sidRootDir(), there) };
  },
  firewall: ["nft", "list", "ruleset"],
  inv: { binary: NETAVARK, rootless: false, aardvarkBinary: AARDVARK, firewallDriver: "nftables" },
  version: /^1\.(1[7-9]|[2-9]\d)\./,
  fwDriver: "nftables",
}));

// Debian 12's own netavark 1.4 (scripts/setup.sh installs it), iptables.
const HOST_NETAVARK = "/usr/lib/podman/netavark";
rootfulSuite(
  "netavark library with Debian 12's netavark 1.4 (this machine, as root, in test netns, iptables)",
  existsSync(HOST_NETAVARK)
    ? missingTools(["iptables-save"], "/usr/sbin:/sbin:/usr/bin:/bin")
    : `${HOST_NETAVARK} is not installed (Debian: apt-get install netavark aardvark-dns)`,
  () => ({
    run: (hostPid, argv, env = {}, stdin = "") => hostInNetns(hostPid, argv, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env }, stdin),
    configDir: (rand) => {
      const dir = join(tmpdir(), `burrow-netavark-lib-${rand}`);
      return { there: dir, here: dir };
    },
    firewall: ["iptables-save"],
    inv: { binary: HOST_NETAVARK, rootless: false, aardvarkBinary: "/usr/lib/podman/aardvark-dns" },
    version: /^1\.\d+\./,
    fwDriver: undefined,
  }),
);

/** Waits until the holder has exec'd `sleep` (so it is in its namespaces). */
async function settled(pid: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("sleep") && Date.now() < deadline) await Bun.sleep(10);
}

const pidLinks = (pid: number): Link[] => JSON.parse(sh("nsenter", "-t", String(pid), "-n", "--", "ip", "-j", "addr", "show"));

const tier = archiveUnreachable ? (name: string, fn: () => void) => test.skip(name, fn) : describeWhen(unavailable);

tier("netavark library with the real netavark 1.17, rootless (sid tier, the test user's user namespace)", () => {
  const holders: Bun.Subprocess[] = [];
  let userNsPid: number;
  let boxPid: number;
  const rand = Math.random().toString(36).slice(2, 8);
  const configDir = `/var/tmp/burrow-netavark-lib-rootless-${rand}`;
  let configDirHere: string;
  let inv: NetavarkInvocation;
  let spawner: NetavarkSpawner;
  /** Runs argv in the sid root as root of the test user's user namespace, in its rootless netns. */
  const inUserNs = (argv: string[], env: Record<string, string> = {}, stdin = "") => {
    const full = [
      "bash",
      sidScript,
      "run",
      "--",
      "env",
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      "nsenter",
      "-t",
      String(userNsPid),
      "-U",
      "-n",
      "--",
      ...argv,
    ];
    const p = Bun.spawn(full, { stdin: new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe" });
    return Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(([stdout, stderr, code]) => ({ code, stdout, stderr }));
  };

  beforeAll(async () => {
    const user = testUser();
    configDirHere = join(sidRootDir(), configDir);
    // Owned by the user: root of its user namespace is the user on disk.
    mkdirSync(configDirHere, { mode: 0o700 });
    chownSync(configDirHere, user.uid, user.gid);
    const userNs = Bun.spawn(["runuser", "-u", user.name, "--", "unshare", "--map-root-user", "--net", "--", "sleep", "600"], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
    });
    holders.push(userNs);
    // runuser may fork (for its PAM session): the holder is the sleep, itself or its child.
    const deadline = Date.now() + 5000;
    let pid = 0;
    while (!pid && Date.now() < deadline) {
      const own = readFileSync(`/proc/${userNs.pid}/cmdline`, "utf8");
      if (own.startsWith("sleep")) pid = userNs.pid;
      else
        pid = Number(
          Bun.spawnSync(["pgrep", "-P", String(userNs.pid), "-x", "sleep"])
            .stdout.toString()
            .trim()
            .split("\n")[0] || 0,
        );
      if (!pid) await Bun.sleep(10);
    }
    if (!pid) throw new Error("the test user's user namespace did not start");
    userNsPid = pid;
    await settled(userNsPid);
    const box = Bun.spawn(["nsenter", "-t", String(userNsPid), "-U", "--", "unshare", "--net", "--", "sleep", "600"], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
    });
    holders.push(box);
    boxPid = box.pid;
    await settled(boxPid);
    inv = { binary: NETAVARK, configDir, rootless: true, aardvarkBinary: AARDVARK };
    spawner = (argv, stdin, env) => inUserNs(argv, env, stdin);
  });

  afterAll(async () => {
    await killPids([...holders.map((h) => h.pid), ...(userNsPid ? [userNsPid] : [])]);
    if (configDirHere) rmSync(configDirHere, { recursive: true, force: true });
  });

  test("setup then teardown in the rootless netns: the sandbox gets its address, and nothing of the network is left", async () => {
    // The sandbox's holder is the test user on this machine, root only in its own user namespace.
    expect(readFileSync(`/proc/${boxPid}/status`, "utf8")).toMatch(new RegExp(`^Uid:\\t${testUser().uid}\\t`, "m"));
    const network = fixtureNetwork();
    const options = buildSetupOptions({
      containerId: "e".repeat(64),
      containerName: `lib-rootless-${rand}`,
      attachments: [{ network, interfaceName: "eth0", staticIps: ["10.89.0.7"], staticMac: "02:42:0a:59:00:07" }],
      ports: [{ hostIp: "127.0.0.1", hostPort: 18082, containerPort: 80, protocol: "tcp" }],
    });
    const sandbox = `/proc/${boxPid}/ns/net`;
    const status = await netavarkSetup(inv, sandbox, options, spawner);
    expect(status.nvtest1?.interfaces?.eth0?.subnets).toEqual([{ ipnet: "10.89.0.7/24", gateway: "10.89.0.1" }]);
    expect(ipv4(pidLinks(boxPid).find((l) => l.ifname === "eth0"))).toEqual(["10.89.0.7/24"]);
    expect(ipv4(pidLinks(userNsPid).find((l) => l.ifname === network.network_interface))).toEqual(["10.89.0.1/24"]);
    const rules = await inUserNs(["nft", "list", "ruleset"]);
    expect(rules.stdout).toContain("dnat ip to 10.89.0.7:80");

    await netavarkTeardown(inv, sandbox, options, spawner);
    expect(pidLinks(boxPid).map((l) => l.ifname)).toEqual(["lo"]);
    expect(pidLinks(userNsPid).map((l) => l.ifname)).toEqual(["lo"]);
    const after = await inUserNs(["nft", "list", "ruleset"]);
    expect(after.stdout).not.toContain("10.89.0.");
    expect(after.stdout).not.toMatch(/chain nv_/);
  });
});

// Both ways with podman 5.8 (issue 14 item 3): a network file burrow writes
// is one podman shows and runs a container on, and one podman writes is one
// burrow reads as servable. The directory is podman's --network-config-dir,
// in the sid root's /var/tmp (owned by the test user), removed at the end.
tier("podman 5.8 and burrow's network files (sid tier, as the test user)", () => {
  const rand = Math.random().toString(36).slice(2, 8);
  const dirThere = `/var/tmp/burrow-netavark-files-${rand}`;
  let dirHere: string;
  const podman = (...args: string[]) =>
    sidRun(["env", "PODMAN_IGNORE_CGROUPSV1_WARNING=1", "podman", "--network-config-dir", dirThere, ...args], { timeoutMs: 60_000 });

  beforeAll(() => {
    const user = testUser();
    dirHere = join(sidRootDir(), dirThere);
    mkdirSync(dirHere, { mode: 0o755 });
    chownSync(dirHere, user.uid, user.gid);
  });
  afterAll(() => {
    if (dirHere) rmSync(dirHere, { recursive: true, force: true });
  });

  test("a network burrow writes is podman's: inspect shows it and a podman container joins it", async () => {
    const existing = readNetworks(dirHere, { rootless: true }).networks.map((n) => n.config);
    const planned = planNetwork({ name: `bw-${rand}`, labels: { made: "burrow" } }, existing, { subnets: [], interfaces: [] });
    writeNetworkFile(dirHere, planned);
    const user = testUser();
    chownSync(join(dirHere, `${planned.name}.json`), user.uid, user.gid);

    const inspect = await podman("network", "inspect", planned.name);
    expect(inspect.stderr).toBe("");
    const shown = JSON.parse(inspect.stdout)[0];
    expect(shown).toMatchObject({
      name: planned.name,
      id: planned.id,
      driver: "bridge",
      network_interface: planned.network_interface,
      subnets: planned.subnets,
      dns_enabled: true,
      labels: { made: "burrow" },
    });

    const run = await podman("run", "--rm", "--network", planned.name, "--rootfs", "/opt/busybox-rootfs", "ip", "-4", "-o", "addr", "show", "eth0");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`inet ${planned.subnets![0]!.subnet.replace(/\.0\/24$/, ".")}`);

    // podman's `network rm` of a file burrow made works too.
    expect((await podman("network", "rm", planned.name)).code).toBe(0);
    expect(readdirSync(dirHere).filter((f) => f.endsWith(".json"))).toEqual([]);
  });

  test("a network podman creates is one burrow lists as servable; a macvlan one is listed with its reason", async () => {
    expect((await podman("network", "create", "--subnet", "10.97.3.0/24", `pm-${rand}`)).code).toBe(0);
    expect((await podman("network", "create", "-d", "macvlan", "-o", "parent=lo", `mv-${rand}`)).code).toBe(0);
    const listing = readNetworks(dirHere, { rootless: true });
    expect(listing.invalid).toEqual([]);
    const by = Object.fromEntries(listing.networks.map((n) => [n.name, n]));
    expect(by[`pm-${rand}`]?.unservable).toBeNull();
    expect(by[`pm-${rand}`]?.config.subnets).toEqual([{ subnet: "10.97.3.0/24", gateway: "10.97.3.1" }]);
    expect(by[`mv-${rand}`]?.unservable?.field).toBe("driver");
    expect(by.podman?.file).toBeNull();
  });
});
