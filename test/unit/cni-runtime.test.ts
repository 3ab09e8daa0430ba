import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assignInterfaces, buildAttachment, interfaceNames } from "../../src/net/cni/attachment.ts";
import type { Conflist } from "../../src/net/cni/conflist.ts";
import { CniPluginError, type PluginSpawner, type SpawnRequest, cniArgsString, findPlugin } from "../../src/net/cni/plugins.ts";
import { cacheFilePath, readCacheFile } from "../../src/net/cni/cache.ts";
import { CniRuntime, CniTeardownError, addGroups, handedOn, pluginStdin } from "../../src/net/cni/runtime.ts";
import { rejection } from "../helpers/rejection.ts";

let dir: string;
let pluginDir: string;
let cacheDir: string;

const PLUGINS = ["bridge", "portmap", "firewall", "tuning", "dnsname"];

function makePlugins(names: string[], body = "#!/bin/sh\nexit 0\n") {
  for (const name of names) {
    writeFileSync(join(pluginDir, name), body);
    chmodSync(join(pluginDir, name), 0o755);
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "burrow-cni-rt-"));
  pluginDir = join(dir, "plugins");
  cacheDir = join(dir, "cache");
  mkdirSync(pluginDir);
  makePlugins(PLUGINS);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const LIST: Conflist = {
  cniVersion: "0.4.0",
  name: "web",
  plugins: [
    { type: "bridge", bridge: "burrow1", isGateway: true, ipam: { type: "host-local", ranges: [[{ subnet: "10.89.1.0/24" }]] } },
    { type: "portmap", capabilities: { portMappings: true } },
    { type: "firewall", backend: "" },
    // Declares a capability, but switched off: gets nothing.
    { type: "tuning", capabilities: { mac: false } },
    { type: "dnsname", domainName: "dns.burrow", capabilities: { aliases: true }, runtimeConfig: { stale: true } },
  ],
};

const BRIDGE_RESULT = {
  cniVersion: "0.4.0",
  interfaces: [
    { name: "burrow1", mac: "aa:00:00:00:00:01" },
    { name: "veth0", mac: "aa:00:00:00:00:02" },
    { name: "eth0", mac: "aa:00:00:00:00:03", sandbox: "/run/netns/x" },
  ],
  ips: [{ version: "4", interface: 2, address: "10.89.1.9/24", gateway: "10.89.1.1" }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: {},
};

interface Call {
  type: string;
  command: string;
  stdin: Record<string, unknown>;
  env: Record<string, string>;
  argv: string[];
}

type Behaviour = (c: Call) => { exitCode?: number | null; stdout?: unknown; stderr?: string };

/** A spawner that plays the plugins: records every call; by default ADD echoes prevResult (bridge makes one). */
function fakePlugins(overrides: Record<string, Behaviour> = {}) {
  const calls: Call[] = [];
  const spawn: PluginSpawner = async (req: SpawnRequest) => {
    const path = req.argv[req.argv.length - 1]!;
    const type = path.slice(path.lastIndexOf("/") + 1);
    const call: Call = { type, command: req.env.CNI_COMMAND!, stdin: JSON.parse(req.stdin), env: req.env, argv: req.argv };
    calls.push(call);
    const behave: Behaviour = overrides[type] ?? ((c) => (c.command !== "ADD" ? {} : { stdout: type === "bridge" ? BRIDGE_RESULT : c.stdin.prevResult }));
    const r = behave(call);
    const stdout = r.stdout === undefined ? "" : typeof r.stdout === "string" ? r.stdout : JSON.stringify(r.stdout);
    return { exitCode: r.exitCode === undefined ? 0 : r.exitCode, stdout, stderr: r.stderr ?? "" };
  };
  return { calls, spawn };
}

const ATT = buildAttachment({
  containerId: "c0ffee",
  containerName: "webapp",
  netns: "/run/netns/x",
  ifName: "eth0",
  ip: "10.89.1.9",
  mac: "92:d0:c6:0a:29:33",
  portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
  aliases: { web: ["www"] },
});

function runtime(spawn: PluginSpawner, extra: Partial<ConstructorParameters<typeof CniRuntime>[0]> = {}) {
  return new CniRuntime({ cacheDir, pluginDirs: [join(dir, "nothing-here"), pluginDir], spawn, ...extra });
}

describe("the plugins that run at once", () => {
  const types = (plugins: Array<{ type: string }>) => addGroups(plugins as Conflist["plugins"]).map((g) => g.map((p) => p.type));
  test("after the first plugin, portmap, firewall, tuning and dnsname in a row form one group; anything else runs alone", () => {
    expect(types(LIST.plugins)).toEqual([["bridge"], ["portmap", "firewall", "tuning", "dnsname"]]);
    expect(types([{ type: "bridge" }, { type: "tuning" }, { type: "custom" }, { type: "portmap" }, { type: "dnsname" }])).toEqual([
      ["bridge"],
      ["tuning"],
      ["custom"],
      ["portmap", "dnsname"],
    ]);
    // The first plugin makes what the others read: never grouped, whatever its type.
    expect(types([{ type: "tuning" }, { type: "portmap" }])).toEqual([["tuning"], ["portmap"]]);
    expect(types([{ type: "macvlan" }])).toEqual([["macvlan"]]);
  });

  test("the result handed on: the one a member changed (the last such in list order), else the one given; key order is no change", () => {
    const given = { cniVersion: "0.4.0", interfaces: [{ name: "eth0", mac: "aa:aa:aa:aa:aa:aa" }], ips: [] } as never;
    const reordered = { ips: [], interfaces: [{ mac: "aa:aa:aa:aa:aa:aa", name: "eth0" }], cniVersion: "0.4.0" } as never;
    const tuned = { cniVersion: "0.4.0", interfaces: [{ name: "eth0", mac: "02:00:00:00:00:01" }], ips: [] } as never;
    const tunedAgain = { cniVersion: "0.4.0", interfaces: [{ name: "eth0", mac: "02:00:00:00:00:02" }], ips: [] } as never;
    expect(handedOn(given, [given, reordered, given])).toBe(given);
    expect(handedOn(given, [given, tuned, reordered])).toBe(tuned);
    expect(handedOn(given, [tuned, tunedAgain, given])).toBe(tunedAgain);
  });

  test("an ADD keeps what tuning changed although dnsname, after it in the list, was given bridge's result", async () => {
    const tunedResult = { ...BRIDGE_RESULT, interfaces: BRIDGE_RESULT.interfaces.map((i, n) => (n === 2 ? { ...i, mac: "02:42:00:00:00:09" } : i)) };
    const fake = fakePlugins({ tuning: (c) => (c.command === "ADD" ? { stdout: tunedResult } : {}) });
    const result = await runtime(fake.spawn).add(LIST, ATT);
    expect(fake.calls.find((c) => c.type === "dnsname")!.stdin.prevResult).toEqual(BRIDGE_RESULT);
    expect(result.interfaces[2]?.mac).toBe("02:42:00:00:00:09");
  });
});

describe("ADD", () => {
  test("runs the plugins in order, chaining prevResult, and returns the normalized result", async () => {
    const fake = fakePlugins();
    const result = await runtime(fake.spawn).add(LIST, ATT);
    expect(fake.calls.map((c) => `${c.command} ${c.type}`)).toEqual(["ADD bridge", "ADD portmap", "ADD firewall", "ADD tuning", "ADD dnsname"]);
    expect(fake.calls[0]!.stdin.prevResult).toBeUndefined();
    for (const c of fake.calls.slice(1)) expect(c.stdin.prevResult).toEqual(BRIDGE_RESULT);
    for (const c of fake.calls) {
      expect(c.stdin.name).toBe("web");
      expect(c.stdin.cniVersion).toBe("0.4.0");
    }
    expect(result.ips).toEqual([{ version: "4", address: "10.89.1.9/24", gateway: "10.89.1.1", interface: 2 }]);
  });

  test("portmap without mappings is not run on ADD (it would echo prevResult), but is on DEL", async () => {
    const fake = fakePlugins();
    const noPorts = buildAttachment({ containerId: "c0ffee", containerName: "webapp", netns: "/run/netns/x", ifName: "eth0" });
    const rt = runtime(fake.spawn);
    const result = await rt.add(LIST, noPorts);
    expect(fake.calls.map((c) => `${c.command} ${c.type}`)).toEqual(["ADD bridge", "ADD firewall", "ADD tuning", "ADD dnsname"]);
    for (const c of fake.calls.slice(1)) expect(c.stdin.prevResult).toEqual(BRIDGE_RESULT);
    expect(result.ips).toEqual([{ version: "4", address: "10.89.1.9/24", gateway: "10.89.1.1", interface: 2 }]);
    fake.calls.length = 0;
    await rt.del("web", noPorts);
    expect(fake.calls.map((c) => `${c.command} ${c.type}`)).toEqual(["DEL dnsname", "DEL tuning", "DEL firewall", "DEL portmap", "DEL bridge"]);
    // With mappings it runs (the test above); a list whose portmap comes first (no prevResult) still gets its error from the plugin.
    const first: Conflist = { ...LIST, plugins: [LIST.plugins[1]!, ...LIST.plugins] };
    fake.calls.length = 0;
    await rt.add(first, noPorts).catch(() => {});
    expect(fake.calls[0]!.type).toBe("portmap");
  });

  test("runtimeConfig carries only the capabilities each plugin declares", async () => {
    const fake = fakePlugins();
    await runtime(fake.spawn).add(LIST, ATT);
    const rc = Object.fromEntries(fake.calls.map((c) => [c.type, c.stdin.runtimeConfig]));
    expect(rc).toEqual({
      bridge: undefined,
      portmap: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" }] },
      firewall: undefined,
      tuning: undefined,
      // The file's own runtimeConfig is replaced, as libcni does.
      dnsname: { aliases: { web: ["www"] } },
    });
    // Everything else in the plugin's object goes through unchanged.
    expect(fake.calls[0]!.stdin.ipam).toEqual(LIST.plugins[0]!.ipam);
    expect(fake.calls[4]!.stdin.domainName).toBe("dns.burrow");
  });

  test("the CNI_* environment, wrapper and extra env", async () => {
    const fake = fakePlugins();
    process.env.CNI_STRAY = "from-the-daemon";
    process.env.BUN_JSC_useConcurrentJIT = "0";
    try {
      await runtime(fake.spawn, { wrapper: ["nsenter", "--net=/run/netns/h", "--"], env: { BURROW_T: "1", PATH: "/bin" } }).add(LIST, ATT);
    } finally {
      delete process.env.CNI_STRAY;
      delete process.env.BUN_JSC_useConcurrentJIT;
    }
    const { env, argv } = fake.calls[0]!;
    expect(argv).toEqual(["nsenter", "--net=/run/netns/h", "--", join(pluginDir, "bridge")]);
    expect(env.CNI_COMMAND).toBe("ADD");
    expect(env.CNI_CONTAINERID).toBe("c0ffee");
    expect(env.CNI_NETNS).toBe("/run/netns/x");
    expect(env.CNI_IFNAME).toBe("eth0");
    expect(env.CNI_ARGS).toBe(
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=webapp;K8S_POD_NAME=webapp;K8S_POD_INFRA_CONTAINER_ID=c0ffee;IP=10.89.1.9;MAC=92:d0:c6:0a:29:33",
    );
    expect(env.CNI_PATH).toBe(`${join(dir, "nothing-here")}:${pluginDir}`);
    expect(env.PATH).toBe("/bin:/usr/sbin:/sbin");
    expect(env.BURROW_T).toBe("1");
    expect(env.CNI_STRAY).toBeUndefined();
    expect(env.BUN_JSC_useConcurrentJIT).toBeUndefined();
  });

  test("the result is cached like libcni's, for DEL after a restart", async () => {
    const fake = fakePlugins();
    await runtime(fake.spawn).add(LIST, ATT);
    const file = join(cacheDir, "results", "web-c0ffee-eth0");
    expect(cacheFilePath(cacheDir, "web", "c0ffee", "eth0")).toBe(file);
    const entry = JSON.parse(readFileSync(file, "utf8"));
    expect(entry).toEqual({
      kind: "cniCacheV1",
      containerId: "c0ffee",
      config: expect.any(String),
      ifName: "eth0",
      networkName: "web",
      netns: "/run/netns/x",
      cniArgs: ATT.args,
      capabilityArgs: ATT.capabilityArgs,
      result: BRIDGE_RESULT,
    });
    // config is base64 (Go's []byte), as libcni and podman write it.
    expect(JSON.parse(Buffer.from(entry.config, "base64").toString())).toEqual(LIST);
  });

  test("a result in another version is converted for the next plugin's prevResult", async () => {
    const fake = fakePlugins({
      bridge: () => ({ stdout: { ...BRIDGE_RESULT, cniVersion: "1.0.0", ips: [{ interface: 2, address: "10.89.1.9/24", gateway: "10.89.1.1" }] } }),
    });
    await runtime(fake.spawn).add(LIST, ATT);
    expect((fake.calls[1]!.stdin.prevResult as { ips: unknown[] }).ips).toEqual([
      { version: "4", interface: 2, address: "10.89.1.9/24", gateway: "10.89.1.1" },
    ]);
  });

  test("a failing plugin: its error verbatim, the whole list torn down in reverse, nothing cached", async () => {
    const fake = fakePlugins({
      tuning: (c) => (c.command === "ADD" ? { exitCode: 1, stdout: { cniVersion: "0.4.0", code: 11, msg: "try again later", details: "device busy" } } : {}),
    });
    const e = await rejection(runtime(fake.spawn).add(LIST, ATT));
    expect(e).toBeInstanceOf(CniPluginError);
    expect(e.message).toBe("CNI plugin tuning failed (code 11): try again later: device busy");
    expect((e as CniPluginError).code).toBe(11);
    // The plugins after bridge run at once (addGroups): dnsname ran beside the failing tuning.
    expect(fake.calls.map((c) => `${c.command} ${c.type}`)).toEqual([
      "ADD bridge",
      "ADD portmap",
      "ADD firewall",
      "ADD tuning",
      "ADD dnsname",
      "DEL dnsname",
      "DEL tuning",
      "DEL firewall",
      "DEL portmap",
      "DEL bridge",
    ]);
    // The teardown hands the plugins what was set up so far.
    for (const c of fake.calls.slice(5)) expect(c.stdin.prevResult).toEqual(BRIDGE_RESULT);
    expect(existsSync(join(cacheDir, "results", "web-c0ffee-eth0"))).toBe(false);
  });

  test("teardown errors of a failed ADD are kept, not hidden", async () => {
    const fake = fakePlugins({
      bridge: (c) => (c.command === "ADD" ? { exitCode: 1, stdout: { code: 7, msg: "bad config" } } : { exitCode: 1, stderr: "cannot find bridge\n" }),
      portmap: (c) => (c.command === "DEL" ? { exitCode: 2, stdout: "" } : {}),
    });
    const e = await rejection(runtime(fake.spawn).add(LIST, ATT));
    expect(e.message).toBe(
      "CNI plugin bridge failed (code 7): bad config (teardown also failed: CNI plugin portmap failed on DEL (exit status 2): the plugin printed no error message; CNI plugin bridge failed on DEL (exit status 1): cannot find bridge)",
    );
    expect((e as unknown as { teardownErrors: Error[] }).teardownErrors).toHaveLength(2);
    // The bridge's ADD failed first: no prevResult to hand on.
    expect(fake.calls.filter((c) => c.command === "DEL").every((c) => c.stdin.prevResult === undefined)).toBe(true);
  });

  test("a config error the plugin repeats on the rollback's DEL is not reported twice", async () => {
    const refuse = () => ({ exitCode: 1, stdout: { code: 7, msg: "invalid range set 0" } });
    const fake = fakePlugins({ bridge: refuse });
    const e = await rejection(runtime(fake.spawn).add(LIST, ATT));
    expect(e.message).toBe("CNI plugin bridge failed (code 7): invalid range set 0");
  });

  test("a missing plugin is named with the directories searched, before anything runs", async () => {
    const fake = fakePlugins();
    const list = { ...LIST, plugins: [...LIST.plugins, { type: "nosuch" }] };
    const e = await rejection(runtime(fake.spawn).add(list, ATT));
    expect(e.message).toBe(
      `CNI plugin nosuch not found in ${join(dir, "nothing-here")}, ${pluginDir}: install it (Debian: containernetworking-plugins) or add its directory`,
    );
    expect(fake.calls).toEqual([]);
  });

  test("a plugin type is a file name, never a path", () => {
    expect(() => findPlugin("../../bin/sh", [pluginDir])).toThrow('invalid CNI plugin type "../../bin/sh"');
  });

  test("a plugin printing no result, or no JSON, fails the ADD", async () => {
    const none = fakePlugins({ firewall: () => ({}) });
    expect((await rejection(runtime(none.spawn).add(LIST, ATT))).message).toBe("CNI plugin firewall printed no result for ADD on network web");
    const junk = fakePlugins({ firewall: (c) => (c.command === "ADD" ? { stdout: "hello" } : {}) });
    expect((await rejection(runtime(junk.spawn).add(LIST, ATT))).message).toStartWith("CNI plugin firewall failed (exit status 0): its output is not JSON");
  });

  test("bad versions and attachment values are refused up front", async () => {
    const fake = fakePlugins();
    expect((await rejection(runtime(fake.spawn).add({ ...LIST, cniVersion: "0.2.0" }, ATT))).message).toBe(
      'network web has cniVersion "0.2.0": burrow supports 0.3.0, 0.3.1, 0.4.0, 1.0.0',
    );
    expect((await rejection(runtime(fake.spawn).add(LIST, { ...ATT, containerId: "bad id" }))).message).toStartWith('invalid CNI container ID "bad id"');
    expect((await rejection(runtime(fake.spawn).add(LIST, { ...ATT, ifName: "a-very-long-ifname" }))).message).toStartWith(
      'invalid interface name "a-very-long-ifname"',
    );
    expect(fake.calls).toEqual([]);
  });
});

describe("DEL", () => {
  test("reverse order with the cached result as prevResult; the cache entry goes", async () => {
    const fake = fakePlugins();
    const rt = runtime(fake.spawn);
    await rt.add(LIST, ATT);
    fake.calls.length = 0;
    await rt.del(LIST, ATT);
    expect(fake.calls.map((c) => `${c.command} ${c.type}`)).toEqual(["DEL dnsname", "DEL tuning", "DEL firewall", "DEL portmap", "DEL bridge"]);
    for (const c of fake.calls) expect(c.stdin.prevResult).toEqual(BRIDGE_RESULT);
    expect(fake.calls[1]!.env.CNI_ARGS).toBe(cniArgsString(ATT.args));
    expect(existsSync(join(cacheDir, "results", "web-c0ffee-eth0"))).toBe(false);
  });

  test("after a restart: by network name alone, from the cached config and args", async () => {
    const first = fakePlugins();
    await runtime(first.spawn).add(LIST, ATT);
    const fake = fakePlugins();
    const restarted = runtime(fake.spawn);
    const cached = await readCacheFile(cacheFilePath(cacheDir, "web", "c0ffee", "eth0"));
    expect([cached.networkName, cached.ifName, cached.netns]).toEqual(["web", "eth0", "/run/netns/x"]);
    await restarted.del("web", { containerId: "c0ffee", netns: "/run/netns/x", ifName: "eth0" });
    expect(fake.calls).toHaveLength(5);
    expect(fake.calls[0]!.env.CNI_ARGS).toBe(cniArgsString(ATT.args));
    expect(fake.calls[0]!.stdin.runtimeConfig).toEqual({ aliases: { web: ["www"] } });
    expect(existsSync(cacheFilePath(cacheDir, "web", "c0ffee", "eth0"))).toBe(false);
    expect((await rejection(restarted.del("web", { containerId: "c0ffee", netns: "/run/netns/x", ifName: "eth0" }))).message).toContain(
      "no cached configuration",
    );
  });

  test("every plugin runs even when some fail; all failures reported; the cache stays for a retry", async () => {
    const fake = fakePlugins({
      tuning: (c) => (c.command === "DEL" ? { exitCode: 1, stdout: { code: 5, msg: "io error" } } : { stdout: c.stdin.prevResult }),
      bridge: (c) => (c.command === "DEL" ? { exitCode: 1, stdout: { code: 999, msg: "netlink", details: "gone" } } : { stdout: BRIDGE_RESULT }),
    });
    const rt = runtime(fake.spawn);
    await rt.add(LIST, ATT);
    fake.calls.length = 0;
    const e = await rejection(rt.del(LIST, ATT));
    expect(e).toBeInstanceOf(CniTeardownError);
    expect((e as CniTeardownError).errors).toHaveLength(2);
    expect(e.message).toBe(
      "tearing down network web for c0ffee/eth0: CNI plugin tuning failed on DEL (code 5): io error; CNI plugin bridge failed on DEL (code 999): netlink: gone",
    );
    expect(fake.calls).toHaveLength(5);
    expect(existsSync(join(cacheDir, "results", "web-c0ffee-eth0"))).toBe(true);
  });

  test("beforeEachPlugin holds back each plugin's run until it resolves", async () => {
    const fake = fakePlugins();
    const rt = runtime(fake.spawn);
    await rt.add(LIST, ATT);
    fake.calls.length = 0;
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held!: () => void;
    const holding = new Promise<void>((r) => (held = r));
    const del = rt.del("web", ATT, {
      beforeEachPlugin: async () => {
        order.push(`wait after ${fake.calls.length}`);
        if (fake.calls.length === 4) {
          held();
          await gate;
        }
      },
    });
    await holding;
    // One wait per group: the four that ADD ran at once, then bridge, held back here.
    expect(fake.calls.map((c) => c.type)).toEqual(["dnsname", "tuning", "firewall", "portmap"]);
    release();
    await del;
    expect(fake.calls.map((c) => c.type)).toEqual(["dnsname", "tuning", "firewall", "portmap", "bridge"]);
    expect(order).toEqual(["wait after 0", "wait after 4"]);
  });

  test("0.3.1 networks get no prevResult on DEL", async () => {
    const fake = fakePlugins({ bridge: (c) => (c.command === "ADD" ? { stdout: { ...BRIDGE_RESULT, cniVersion: "0.3.1" } } : {}) });
    const list = { ...LIST, cniVersion: "0.3.1" };
    const rt = runtime(fake.spawn);
    await rt.add(list, ATT);
    fake.calls.length = 0;
    await rt.del(list, ATT);
    expect(fake.calls.every((c) => c.stdin.prevResult === undefined)).toBe(true);
  });
});

describe("the default spawner runs real executables", () => {
  test("stdin, environment and result", async () => {
    writeFileSync(
      join(pluginDir, "bridge"),
      `#!/bin/sh\ncat > "${dir}/stdin"\necho "$CNI_COMMAND $CNI_IFNAME $CNI_ARGS" > "${dir}/env"\n` +
        `echo '{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/24"}]}'\n`,
    );
    const list: Conflist = { cniVersion: "1.0.0", name: "one", plugins: [{ type: "bridge", x: 1 }] };
    const rt = new CniRuntime({ cacheDir, pluginDirs: [pluginDir] });
    const r = await rt.add(list, { containerId: "abc", netns: "/proc/self/ns/net", ifName: "eth1", args: [["K", "V"]] });
    expect(r.ips).toEqual([{ version: "4", address: "10.9.0.2/24" }]);
    expect(JSON.parse(readFileSync(join(dir, "stdin"), "utf8"))).toEqual({ type: "bridge", x: 1, name: "one", cniVersion: "1.0.0" });
    expect(readFileSync(join(dir, "env"), "utf8")).toBe("ADD eth1 K=V\n");
  });

  test("an error object on stdout, and a hung plugin", async () => {
    writeFileSync(
      join(pluginDir, "bridge"),
      `#!/bin/sh\n[ "$CNI_COMMAND" = ADD ] || exit 0\necho '{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"no bridge name"}'\nexit 1\n`,
    );
    writeFileSync(join(pluginDir, "tuning"), "#!/bin/sh\nexec sleep 30\n");
    const rt = new CniRuntime({ cacheDir, pluginDirs: [pluginDir], timeoutMs: 300 });
    const att = { containerId: "abc", netns: "/proc/self/ns/net", ifName: "eth0" };
    expect((await rejection(rt.add({ cniVersion: "1.0.0", name: "one", plugins: [{ type: "bridge" }] }, att))).message).toBe(
      "CNI plugin bridge failed (code 7): invalid config: no bridge name",
    );
    const started = Date.now();
    expect((await rejection(rt.del({ cniVersion: "1.0.0", name: "one", plugins: [{ type: "tuning" }] }, att))).message).toBe(
      "tearing down network one for abc/eth0: CNI plugin tuning failed on DEL (killed): no answer within 300 ms",
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe("attachments", () => {
  test("ocicni's CNI_ARGS and capability args", () => {
    expect(ATT.args).toEqual([
      ["IgnoreUnknown", "1"],
      ["K8S_POD_NAMESPACE", "webapp"],
      ["K8S_POD_NAME", "webapp"],
      ["K8S_POD_INFRA_CONTAINER_ID", "c0ffee"],
      ["IP", "10.89.1.9"],
      ["MAC", "92:d0:c6:0a:29:33"],
    ]);
    const plain = buildAttachment({ containerId: "c1", containerName: "n", netns: "/x", ifName: "eth0" });
    expect(plain.args).toHaveLength(4);
    expect(plain.capabilityArgs).toEqual({});
    const extra = buildAttachment({ containerId: "c1", containerName: "n", netns: "/x", ifName: "eth0", capabilityArgs: { ips: ["10.1.1.1/24"] } });
    expect(extra.capabilityArgs).toEqual({ ips: ["10.1.1.1/24"] });
  });

  test("bad IP, MAC and port values are named", () => {
    const base = { containerId: "c1", containerName: "n", netns: "/x", ifName: "eth0" };
    expect(() => buildAttachment({ ...base, ip: "10.1.1" })).toThrow('invalid IP address "10.1.1"');
    expect(() => buildAttachment({ ...base, mac: "92:d0:c6" })).toThrow('invalid MAC address "92:d0:c6"');
    expect(() => buildAttachment({ ...base, portMappings: [{ hostPort: 0, containerPort: 80, protocol: "tcp" }] })).toThrow(
      /invalid port mapping: 0\.hostPort/,
    );
  });

  test("stdin of one plugin (libcni's buildOneConfig)", () => {
    const conf = pluginStdin({ name: "n", cniVersion: "1.0.0" }, { type: "portmap", capabilities: { portMappings: true, ips: true } }, undefined, {
      ips: ["x"],
      mac: "m",
    });
    expect(conf).toEqual({ type: "portmap", capabilities: { portMappings: true, ips: true }, name: "n", cniVersion: "1.0.0", runtimeConfig: { ips: ["x"] } });
  });

  test("interface names: eth0, eth1, ...; stable, lowest free index for newcomers", () => {
    expect(interfaceNames(["a", "b"])).toEqual({ a: "eth0", b: "eth1" });
    const after = assignInterfaces(["a", "c"], { a: 0, b: 2 });
    expect(after).toEqual({ a: 0, b: 2, c: 1 });
    expect(interfaceNames(["b", "d"], after)).toEqual({ b: "eth2", d: "eth3" });
  });
});
