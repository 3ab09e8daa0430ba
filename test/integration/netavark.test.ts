// Named networks served by the real netavark (Debian 12's 1.4 here; the sid
// tier runs 1.17 with nftables): the built binary, rootless as the test user
// (netavark in burrow's rootless namespace) and rootful as root in a test
// netns. podman 4-6's network files, aardvark-dns names, static addresses,
// several networks, connect/disconnect/reload, a daemon crash; every test
// ends with the context's leak check.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, repoRoot, testUser } from "../helpers/env.ts";
import { listPids } from "../helpers/netns.ts";
import { until } from "../helpers/until.ts";
import { describeWhen } from "../helpers/requirements.ts";
import { fetchFromHost, inspect, sandboxNames } from "../helpers/published.ts";
import { findNetavarkHelper } from "../../src/net/netavark/run.ts";
import { holdPosixLock } from "../helpers/posix-lock.ts";

const why = integrationUnavailable() ?? (findNetavarkHelper("netavark") ? null : "netavark is not installed (apt-get install netavark aardvark-dns)");
if (why) console.warn(`skipping the netavark network tests: ${why}`);

// Below the ephemeral range, apart from the other files' ranges.
let nextPort = 23500 + Math.floor(Math.random() * 1000);

function own(t: BurrowContext, path: string): void {
  if (t.mode === "rootless") chownSync(path, testUser().uid, testUser().gid);
}

/** A detached sandbox serving its own name over HTTP on :8080. */
async function webSandbox(t: BurrowContext, name: string, args: string[]): Promise<string> {
  const dir = `${t.dirs.root}/www-${name}`;
  mkdirSync(dir, { recursive: true });
  own(t, dir);
  writeFileSync(`${dir}/index.html`, `${name}\n`);
  own(t, `${dir}/index.html`);
  const id = (await t.burrowOk(["run", "-d", "--name", name, ...args, "--", "busybox", "httpd", "-f", "-p", "8080", "-h", dir])).trim();
  expect(id).toMatch(/^[0-9a-f]{64}$/);
  return id;
}

async function fetchFrom(t: BurrowContext, from: string, url: string): Promise<string | null> {
  const r = await t.burrow(["exec", from, "--", "curl", "-sS", "--max-time", "2", url], { timeoutMs: 15000 });
  return r.code === 0 ? r.stdout : null;
}

const reach = (t: BurrowContext, from: string, url: string) => until(() => fetchFrom(t, from, url), 10000, `${from} -> ${url}`);

async function links(t: BurrowContext, name: string): Promise<Record<string, { mac?: string; ipv4: string[] }>> {
  const out: Array<{ ifname: string; address?: string; addr_info?: Array<{ family: string; local: string; prefixlen: number }> }> = JSON.parse(
    await t.burrowOk(["exec", name, "--", "ip", "-j", "addr", "show"]),
  );
  return Object.fromEntries(
    out.map((l) => [l.ifname, { mac: l.address, ipv4: (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`) }]),
  );
}

/** aardvark-dns and netavark processes working on this context's netavark dir. */
function netavarkProcesses(t: BurrowContext): string[] {
  return listPids().flatMap((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      return /aardvark-dns|netavark/.test(cmd) && cmd.includes(t.dirs.netavarkDir) ? [cmd] : [];
    } catch {
      return [];
    }
  });
}

/** What the journal, aardvark-dns's config and (rootless) the shared namespace still hold. */
function netavarkState(t: BurrowContext): string[] {
  const out: string[] = [];
  const journal = `${t.dirs.stateDir}/netavark-journal`;
  if (existsSync(journal)) out.push(...readdirSync(journal).map((f) => `journal/${f}`));
  const aardvark = `${t.dirs.netavarkDir}/aardvark-dns`;
  if (existsSync(aardvark)) out.push(...readdirSync(aardvark).map((f) => `aardvark-dns/${f}`));
  if (t.mode === "rootless" && existsSync(`${t.dirs.runtimeDir}/rootless-netns`)) out.push("rootless-netns");
  return out;
}

for (const mode of ["rootless", "rootful"] as const) {
  describeWhen(why)(`netavark networks (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode, { networkBackend: "netavark" });
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("names, aliases and short ids through aardvark-dns; static IP and MAC; two networks; a published port; nothing left", async () => {
      // As on a machine without podman: netavark's --config does not exist yet (netavark 1.4 does not make it).
      rmSync(t.dirs.netavarkDir, { recursive: true, force: true });
      expect(await t.burrowOk(["network", "create", "--subnet", "10.89.60.0/24", "front"])).toBe("front\n");
      await t.burrowOk(["network", "create", "--subnet", "10.89.61.0/24", "back"]);
      // podman's file, in podman's place, in podman's format
      const file = readFileSync(`${t.dirs.networksDir}/front.json`, "utf8");
      expect(file).toStartWith('{\n     "name": "front",\n     "id": "');
      expect(JSON.parse(file)).toMatchObject({ driver: "bridge", dns_enabled: true, subnets: [{ subnet: "10.89.60.0/24", gateway: "10.89.60.1" }] });

      const port = nextPort++;
      const [aId, bId] = await Promise.all([
        webSandbox(t, "a", [
          "--network",
          "front",
          "--ip",
          "10.89.60.50",
          "--mac-address",
          "92:d0:c6:0a:29:33",
          "--network-alias",
          "web",
          "-p",
          `127.0.0.1:${port}:8080`,
        ]),
        webSandbox(t, "b", ["--network", "front,back"]),
      ]);
      const a = (await inspect(t, "a")).NetworkSettings.Networks;
      expect(Object.keys(a)).toEqual(["front"]);
      expect(a.front).toMatchObject({ NetworkID: "front", IPAddress: "10.89.60.50", IPPrefixLen: 24, Gateway: "10.89.60.1", MacAddress: "92:d0:c6:0a:29:33" });
      expect([...a.front.Aliases].sort()).toEqual(["a", aId.slice(0, 12), "web"].sort());
      expect((await links(t, "a")).eth0).toEqual({ mac: "92:d0:c6:0a:29:33", ipv4: ["10.89.60.50/24"] });
      const b = (await inspect(t, "b")).NetworkSettings.Networks;
      expect(Object.keys(b).sort()).toEqual(["back", "front"]);
      const l = await links(t, "b");
      expect(l.eth0!.ipv4).toEqual([`${b.front.IPAddress}/24`]);
      expect(l.eth1!.ipv4).toEqual([`${b.back.IPAddress}/24`]);

      for (const host of ["10.89.60.50", "a", "web", aId.slice(0, 12), "a.dns.podman"]) expect(await reach(t, "b", `http://${host}:8080/`)).toBe("a\n");
      expect(await reach(t, "a", `http://${bId.slice(0, 12)}:8080/`)).toBe("b\n");
      const resolv = (await t.burrowOk(["exec", "b", "--", "cat", "/etc/resolv.conf"])).split("\n");
      expect(resolv.filter((x) => x.startsWith("nameserver")).slice(0, 2)).toEqual(["nameserver 10.89.60.1", "nameserver 10.89.61.1"]);
      expect(resolv).toContain("search dns.podman");
      expect(await until(() => fetchFromHost(t, port), 10000, "the published port")).toBe("a\n");

      // A taken address: one line naming it, nothing made.
      const taken = await t.burrow(["run", "-d", "--name", "c", "--network", "front", "--ip", "10.89.60.50", "--", "sleep", "300"]);
      expect(taken.code).toBe(125);
      expect(taken.stderr.trim().split("\n")).toHaveLength(1);
      expect(taken.stderr).toContain("10.89.60.50 is already allocated on network front");
      // An address outside the network: refused before netavark runs.
      const outside = await t.burrow(["run", "--rm", "--network", "front", "--ip", "10.1.2.3", "--", "true"]);
      expect(outside.code).toBe(125);
      expect(outside.stderr).toContain("10.1.2.3 is not in a subnet of network front");

      const used = await t.burrow(["network", "rm", "front"]);
      expect(used.code).toBe(125);
      expect(used.stderr).toContain("used by sandbox");

      await t.burrowOk(["rm", "-f", "a", "b"]);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      await until(
        async () => (netavarkState(t).length === 0 && netavarkProcesses(t).length === 0 ? true : null),
        10000,
        "netavark's state and aardvark-dns gone",
      );
      expect(await t.burrowOk(["network", "rm", "front", "back"])).toBe("front\nback\n");
      expect(existsSync(`${t.dirs.networksDir}/front.json`)).toBe(false);
    }, 90000);

    test("a sandbox that leaves while another stays: its interface goes ahead of netavark's teardown, its name and address go, and the next one gets that address", async () => {
      // The first command starts the daemon: its debug log says which teardown ran.
      const env = { BURROW_LOG: "debug" };
      await t.burrowOk(["network", "create", "--subnet", "10.89.64.0/24", "lv"], { env });
      const dir = `${t.dirs.root}/www-stay`;
      mkdirSync(dir, { recursive: true });
      own(t, dir);
      writeFileSync(`${dir}/index.html`, "stay\n");
      own(t, `${dir}/index.html`);
      await t.burrowOk(["run", "-d", "--name", "stay", "--network", "lv", "--", "busybox", "httpd", "-f", "-p", "8080", "-h", dir], { env });
      const log = () => readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8");
      const addressOf = (out: string) => /inet (10\.89\.64\.\d+)\//.exec(out)?.[1];
      const first = addressOf(await t.burrowOk(["run", "--rm", "--name", "leaver", "--network", "lv", "--", "ip", "-4", "-o", "addr", "show", "eth0"]));
      expect(first).toMatch(/^10\.89\.64\.\d+$/);
      // Deleted ahead, then netavark's teardown (timed only when it succeeded, or failed only for the interface gone).
      await until(
        () => (/eth0 deleted ahead in [\d.]+ ms\n(.*\n)*.*netavark teardown [0-9a-f]{12}: [\d.]+ ms/.test(log()) ? true : null),
        10000,
        "the leave's teardown",
      );
      expect(log()).not.toContain("the interfaces were not deleted ahead");
      expect(readFileSync(`${t.dirs.netavarkDir}/aardvark-dns/lv`, "utf8")).not.toContain("leaver");
      // Its address is free again, and the next sandbox reaches the one that stayed by name.
      const next = await until(
        async () => {
          const r = await t.burrow(["run", "--rm", "--network", "lv", "--", "sh", "-c", "ip -4 -o addr show eth0 && curl -sS --max-time 2 http://stay:8080/"]);
          return r.code === 0 ? r.stdout : null;
        },
        15000,
        "a sandbox after the leave",
      );
      expect(addressOf(next)).toBe(first);
      expect(next).toEndWith("stay\n");
      await t.burrowOk(["rm", "-f", "stay"]);
      await until(async () => (netavarkState(t).length === 0 ? true : null), 10000, "netavark's state gone");
      expect(await t.burrowOk(["network", "rm", "lv"])).toBe("lv\n");
    }, 90000);

    test("connect, disconnect and reload keep the address and MAC; aardvark-dns follows", async () => {
      await t.burrowOk(["network", "create", "--subnet", "10.89.62.0/24", "n1"]);
      await t.burrowOk(["network", "create", "--subnet", "10.89.63.0/24", "n2"]);
      await webSandbox(t, "s", ["--network", "n1"]);
      await webSandbox(t, "peer", ["--network", "n2"]);
      const before = (await inspect(t, "s")).NetworkSettings.Networks.n1;
      // No second interface before the connect. (Not "peer cannot resolve s": a
      // name nobody knows goes to the upstream resolvers, which the rootful test
      // netns cannot reach, and aardvark-dns 1.4 then answers nothing after its
      // next reload until that forward gives up. Nor "peer cannot reach s's
      // address": netavark routes between its bridges unless told to isolate.)
      expect((await links(t, "s")).eth1).toBeUndefined();

      await t.burrowOk(["network", "connect", "--alias", "svc", "n2", "s"]);
      const both = (await inspect(t, "s")).NetworkSettings.Networks;
      expect(Object.keys(both).sort()).toEqual(["n1", "n2"]);
      expect(both.n2.IPAddress).toMatch(/^10\.89\.63\.\d+$/);
      expect((await links(t, "s")).eth1!.ipv4).toEqual([`${both.n2.IPAddress}/24`]);
      expect(await reach(t, "peer", "http://svc:8080/")).toBe("s\n");

      await t.burrowOk(["network", "reload", "s"]);
      const after = (await inspect(t, "s")).NetworkSettings.Networks;
      expect([after.n1.IPAddress, after.n1.MacAddress, after.n2.IPAddress, after.n2.MacAddress]).toEqual([
        before.IPAddress,
        before.MacAddress,
        both.n2.IPAddress,
        both.n2.MacAddress,
      ]);
      // Both ways over n2 after the reload, by name. peer's neighbour entry for
      // the gateway is from before: burrow fixed the bridge's MAC (netavark 1.4
      // leaves it to the lowest port MAC, which s's new veth could change;
      // docs/netavark.md).
      expect(await reach(t, "peer", "http://s:8080/")).toBe("s\n");
      expect(await reach(t, "s", "http://peer:8080/")).toBe("peer\n");

      await t.burrowOk(["network", "disconnect", "n2", "s"]);
      expect(Object.keys((await inspect(t, "s")).NetworkSettings.Networks)).toEqual(["n1"]);
      expect((await links(t, "s")).eth1).toBeUndefined();
      await until(async () => ((await fetchFrom(t, "peer", "http://s:8080/")) === null ? true : null), 10000, "s unreachable from n2");
      await t.burrowOk(["rm", "-f", "s", "peer"]);
      await until(async () => (netavarkState(t).length === 0 ? true : null), 10000, "netavark's state gone");
    }, 90000);

    test("podman's network files: the default network, a file podman wrote, and one burrow cannot serve", async () => {
      mkdirSync(t.dirs.networksDir, { recursive: true });
      for (const name of ["nvtest2", "nvmac"]) copyFileSync(`${repoRoot}/test/fixtures/netavark/podman-5.8-${name}.json`, `${t.dirs.networksDir}/${name}.json`);
      const ls = await t.burrow(["network", "ls", "--format", "json"]);
      expect(ls.code).toBe(0);
      const names = (JSON.parse(ls.stdout) as Array<{ name: string }>).map((n) => n.name);
      expect(names).toEqual(expect.arrayContaining(["podman", "nvtest2", "nvmac"]));
      expect(ls.stderr).toContain('network nvmac cannot be used: driver "macvlan"');

      // The file podman wrote (IPv6, internal, a label) serves a sandbox.
      const fixture = JSON.parse(readFileSync(`${t.dirs.networksDir}/nvtest2.json`, "utf8"));
      await t.burrowOk(["run", "-d", "--name", "p", "--network", "nvtest2", "--", "sleep", "300"]);
      const n = (await inspect(t, "p")).NetworkSettings.Networks.nvtest2;
      const v4 = fixture.subnets.find((s: { subnet: string }) => !s.subnet.includes(":")).subnet.replace(/\.0\/\d+$/, ".");
      expect(n.IPAddress.startsWith(v4)).toBe(true);
      expect(n.GlobalIPv6Address).not.toBe("");

      // --network bridge is podman's default network, podman0 on 10.88.0.0/16.
      const br = await t.burrow(["run", "--rm", "--network", "bridge", "--", "sh", "-c", "ip -4 -o addr show eth0"]);
      expect(br.code).toBe(0);
      expect(br.stdout).toMatch(/inet 10\.88\.\d+\.\d+\/16/);

      // One burrow cannot serve: one line naming network, field and value; nothing made.
      const mac = await t.burrow(["run", "--rm", "--network", "nvmac", "--", "true"]);
      expect(mac.code).toBe(125);
      const needsRoot = mode === "rootless" ? " (and it needs root)" : "";
      expect(mac.stderr.trim()).toBe(`Error: network nvmac cannot be used: driver "macvlan": burrow serves bridge networks only${needsRoot}`);
      const unknown = await t.burrow(["run", "--rm", "--network", "nosuch", "--", "true"]);
      expect(unknown.code).toBe(125);
      expect(unknown.stderr).toContain('no network with name or id "nosuch" found');
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])).map((s: { Names: string[] }) => s.Names[0])).toEqual(["p"]);
      // Files burrow did not create are left as they were.
      expect(readFileSync(`${t.dirs.networksDir}/nvtest2.json`, "utf8")).toBe(
        readFileSync(`${repoRoot}/test/fixtures/netavark/podman-5.8-nvtest2.json`, "utf8"),
      );
      await t.burrowOk(["rm", "-f", "p"]);
    }, 90000);

    test("network create --ip-range: podman's lease range in the file, addresses only inside it, a bad range refused", async () => {
      // A CIDR range is written as podman 4.3 and 5.8 write it: its first host to its last address.
      // The lower half: the address podman would reach last there is the range's end, not the subnet's.
      await t.burrowOk(["network", "create", "--subnet", "10.89.62.0/24", "--ip-range", "10.89.62.0/25", "ranged"]);
      expect(JSON.parse(readFileSync(`${t.dirs.networksDir}/ranged.json`, "utf8")).subnets).toEqual([
        { subnet: "10.89.62.0/24", gateway: "10.89.62.1", lease_range: { start_ip: "10.89.62.1", end_ip: "10.89.62.127" } },
      ]);
      expect(await t.burrowOk(["run", "--rm", "--network", "ranged", "--", "sh", "-c", "ip -4 -o addr show eth0"])).toMatch(/inet 10\.89\.62\.127\/24 /);

      // podman 5's START-END: two addresses, two sandboxes; a third is refused in one line and leaves nothing.
      await t.burrowOk(["network", "create", "--subnet", "10.89.63.0/24", "--ip-range", "10.89.63.10-10.89.63.11", "pair"]);
      await t.burrowOk(["run", "-d", "--name", "r1", "--network", "pair", "--", "sleep", "300"]);
      await t.burrowOk(["run", "-d", "--name", "r2", "--network", "pair", "--", "sleep", "300"]);
      const got = [(await inspect(t, "r1")).NetworkSettings.Networks.pair.IPAddress, (await inspect(t, "r2")).NetworkSettings.Networks.pair.IPAddress];
      expect(got.sort()).toEqual(["10.89.63.10", "10.89.63.11"]);
      const full = await t.burrow(["run", "--rm", "--network", "pair", "--", "true"]);
      expect(full.code).not.toBe(0);
      expect(full.stderr.trim()).toBe("Error: no free IP address left in 10.89.63.0/24 of network pair");
      expect(await sandboxNames(t)).toEqual(["r1", "r2"]);
      await t.burrowOk(["rm", "-f", "r1", "r2"]);

      // A range outside its subnet: one line, exit 125, no file.
      const bad = await t.burrow(["network", "create", "--subnet", "10.89.64.0/24", "--ip-range", "10.89.65.0/25", "badrange"]);
      expect(bad.code).toBe(125);
      expect(bad.stderr.trim()).toBe('Error: --ip-range "10.89.65.0/25" is not inside subnet 10.89.64.0/24');
      expect(existsSync(`${t.dirs.networksDir}/badrange.json`)).toBe(false);
      await t.burrowOk(["network", "rm", "ranged", "pair"]);
    }, 90000);

    test("podman's network lock is waited for: network create, and rootful a sandbox's setup, run after podman lets go", async () => {
      // python3 takes the lock as podman's lockfile package does (a classic
      // POSIX write lock on NETWORKS_DIR/netavark.lock: podman 4, and podman 5
      // rootless), holds it 1.5 s, then writes a marker and exits (letting go).
      // A command that returns with the marker absent did not wait. Rootless
      // the file is root's (python3 made it), so the daemon may only read it:
      // its shared lock must wait for the write lock all the same.
      mkdirSync(t.dirs.networksDir, { recursive: true });
      const lock = `${t.dirs.networksDir}/netavark.lock`;
      const marker = `${t.dirs.stateDir}-podman-let-go`;
      const holdAsPodman = () => {
        rmSync(marker, { force: true });
        return holdPosixLock(lock, { forMs: 1500, marker });
      };
      try {
        let holder = await holdAsPodman();
        await t.burrowOk(["network", "create", "--subnet", "10.89.66.0/24", "locked"]);
        expect(existsSync(marker)).toBe(true);
        await holder.exited;
        if (mode === "rootful") {
          holder = await holdAsPodman();
          await t.burrowOk(["run", "--rm", "--network", "locked", "--", "true"]);
          expect(existsSync(marker)).toBe(true);
          await holder.exited;
        }
        holder = await holdAsPodman();
        await t.burrowOk(["network", "rm", "locked"]);
        expect(existsSync(marker)).toBe(true);
        await holder.exited;
      } finally {
        rmSync(marker, { force: true });
      }
    }, 90000);

    test("a setup netavark refuses is rolled back: netavark's message in one line, exit 125, nothing left", async () => {
      // A network whose bridge is an interface that is not a bridge: planned
      // by hand (podman would never), refused by netavark half-way.
      mkdirSync(t.dirs.networksDir, { recursive: true });
      const bad = {
        name: "badbridge",
        id: "b".repeat(64),
        driver: "bridge",
        network_interface: "lo",
        subnets: [{ subnet: "10.89.70.0/24", gateway: "10.89.70.1" }],
        ipv6_enabled: false,
        internal: false,
        dns_enabled: true,
        ipam_options: { driver: "host-local" },
      };
      writeFileSync(`${t.dirs.networksDir}/badbridge.json`, `${JSON.stringify(bad, null, 5)}\n`);
      const port = nextPort++;
      const r = await t.burrow(["run", "-d", "--name", "nope", "--network", "badbridge", "-p", `127.0.0.1:${port}:80`, "--", "sleep", "300"]);
      expect(r.code).toBe(125);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith("Error: netavark setup failed: ");
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      await until(
        async () => (netavarkState(t).length === 0 && netavarkProcesses(t).length === 0 ? true : null),
        10000,
        "netavark's state and aardvark-dns gone",
      );
      // The name, the port and the address are free again.
      await t.burrowOk(["network", "create", "--subnet", "10.89.71.0/24", "good"]);
      await webSandbox(t, "nope", ["--network", "good", "-p", `127.0.0.1:${port}:8080`]);
      expect(await until(() => fetchFromHost(t, port), 10000, "the published port")).toBe("nope\n");
      await t.burrowOk(["rm", "-f", "nope"]);
    }, 90000);

    test("stop + start while another sandbox stays on the bridge: the published port answers again at once", async () => {
      // The address comes back with a new MAC; netavark 1.4 announces none, and an old
      // neighbour entry on the bridge (rootful) would keep the port dark for ~30 s.
      await t.burrowOk(["network", "create", "--subnet", "10.89.72.0/24", "sn"]);
      await webSandbox(t, "stays", ["--network", "sn"]);
      const port = nextPort++;
      await webSandbox(t, "web", ["--network", "sn", "-p", `127.0.0.1:${port}:8080`]);
      expect(await until(() => fetchFromHost(t, port), 10000, "the published port")).toBe("web\n");
      await t.burrowOk(["stop", "-t", "0", "web"]);
      await t.burrowOk(["start", "web"]);
      expect(await until(() => fetchFromHost(t, port), 5000, "the published port after start")).toBe("web\n");
      await t.burrowOk(["rm", "-f", "web", "stays"]);
      await t.burrowOk(["network", "rm", "sn"]);
    }, 60000);

    test("a daemon killed with SIGKILL: the sandbox keeps its network, and rm -f afterwards leaves nothing", async () => {
      await t.burrowOk(["network", "create", "kn"]);
      await webSandbox(t, "k", ["--network", "kn"]);
      await webSandbox(t, "k2", ["--network", "kn"]);
      expect(await reach(t, "k2", "http://k:8080/")).toBe("k\n");
      const daemons = daemonPids(t);
      expect(daemons.length).toBe(1);
      process.kill(daemons[0]!, "SIGKILL");
      expect(await reach(t, "k2", "http://k:8080/")).toBe("k\n");
      await t.burrowOk(["rm", "-f", "k", "k2"]);
      await until(
        async () => (netavarkState(t).length === 0 && netavarkProcesses(t).length === 0 ? true : null),
        10000,
        "netavark's state and aardvark-dns gone",
      );
    }, 90000);
  });
}

describeWhen(why)("which backend serves named networks", () => {
  let t: BurrowContext;
  afterEach(async () => {
    await t.dispose();
  });
  /** No containers.conf but an empty one: the test user's own (scripts/bench/setup-peers.sh writes one) must not decide. */
  const noConf = (t: BurrowContext) => {
    const conf = `${t.dirs.root}/containers.conf`;
    writeFileSync(conf, "");
    own(t, conf);
    return { env: { CONTAINERS_CONF: conf } };
  };

  test("no CNI network and netavark installed: netavark, and info says why", async () => {
    t = await burrowContext("rootless", { networkBackend: "auto" });
    const o = noConf(t);
    const info = JSON.parse(await t.burrowOk(["info", "--format", "json"], o));
    expect(info.Network.NamedNetworks).toEqual({ Backend: "netavark", Why: "netavark is installed and no CNI network exists" });
    await t.burrowOk(["network", "create", "auto1"], o);
    expect(existsSync(`${t.dirs.networksDir}/auto1.json`)).toBe(true);
    await t.burrowOk(["network", "rm", "auto1"], o);
  });

  test("a user with CNI networks keeps CNI (an upgrade from 0.2.0)", async () => {
    t = await burrowContext("rootless", { networkBackend: "auto" });
    writeFileSync(`${t.dirs.cniConfigDir}/old.conflist`, readFileSync(`${repoRoot}/test/fixtures/netavark/podman-5.8-nvtest1.json`, "utf8"));
    own(t, `${t.dirs.cniConfigDir}/old.conflist`);
    const info = JSON.parse(await t.burrowOk(["info", "--format", "json"], noConf(t)));
    expect(info.Network.NamedNetworks).toEqual({ Backend: "cni", Why: "CNI networks or sandboxes on them exist already" });
  });

  test("networks of both backends: network ls shows each with its backend, and rm removes either", async () => {
    t = await burrowContext("rootless", { networkBackend: "cni" });
    await t.burrowOk(["network", "create", "oldcni"]);
    mkdirSync(t.dirs.networksDir, { recursive: true });
    copyFileSync(`${repoRoot}/test/fixtures/netavark/podman-5.8-nvtest1.json`, `${t.dirs.networksDir}/nvtest1.json`);
    own(t, t.dirs.networksDir);
    own(t, `${t.dirs.networksDir}/nvtest1.json`);
    const table = (await t.burrowOk(["network", "ls"])).trim().split("\n");
    expect(table[0]).toMatch(/^NETWORK ID\s+NAME\s+DRIVER\s+BACKEND$/);
    const rows = Object.fromEntries(table.slice(1).map((l) => [l.split(/\s+/)[1], l.split(/\s+/)[3]]));
    // CNI serves named networks here; podman's default network "podman" is not made up beside burrow's.
    expect(rows).toEqual({ burrow: "cni", oldcni: "cni", nvtest1: "netavark" });
    expect(JSON.parse(await t.burrowOk(["network", "inspect", "nvtest1"]))[0].name).toBe("nvtest1");
    expect(await t.burrowOk(["network", "rm", "nvtest1", "oldcni"])).toBe("nvtest1\noldcni\n");
    expect(existsSync(`${t.dirs.networksDir}/nvtest1.json`)).toBe(false);
    expect((await t.burrowOk(["network", "ls"])).split("\n")[0]).not.toContain("BACKEND");
  });
});
