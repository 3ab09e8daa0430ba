// Running netavark (src/net/netavark/run.ts) with a stand-in spawner: the
// options document, argv, environment, reply validation and the one-line
// errors. The real binary is test/integration/netavark-lib.test.ts.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import type { BurrowError } from "../../src/errors.ts";
import { defaultNetworkConfig, parseNetworkFile } from "../../src/net/netavark/networks-dir.ts";
import {
  buildSetupOptions,
  failureMessage,
  findNetavarkHelper,
  type NetavarkInvocation,
  type NetavarkRun,
  netavarkArgv,
  netavarkEnv,
  netavarkSetup,
  netavarkTeardown,
  netavarkVersion,
} from "../../src/net/netavark/run.ts";
import { type NetworkFile, SetupOptions } from "../../src/net/netavark/schema.ts";
import { onlyGoneInterfaces } from "../../src/net/netavark/backend.ts";

function nvtest1(): NetworkFile {
  const r = parseNetworkFile("nvtest1.json", readFileSync(join(import.meta.dir, "../fixtures/netavark/podman-5.8-nvtest1.json"), "utf8"));
  if (!("config" in r)) throw new Error(r.reason);
  return r.config;
}

const inv: NetavarkInvocation = {
  binary: "/usr/lib/podman/netavark",
  configDir: "/run/user/1000/burrow/netavark",
  rootless: true,
  aardvarkBinary: "/usr/lib/podman/aardvark-dns",
};

const options = () =>
  buildSetupOptions({
    containerId: "a".repeat(64),
    containerName: "web",
    hostname: "web",
    attachments: [
      { network: nvtest1(), interfaceName: "eth0", staticIps: ["10.89.0.5"], staticMac: "02:00:00:00:00:05", aliases: ["www", "aaaaaaaaaaaa"] },
      { network: defaultNetworkConfig({ now: new Date(0) }), interfaceName: "eth1", staticIps: ["10.88.0.9"] },
    ],
    ports: [{ hostIp: "", hostPort: 8080, containerPort: 80, protocol: "tcp" }],
    dnsServers: ["1.1.1.1"],
  });

/** A spawner that records its calls and answers from a list. */
function fake(...answers: NetavarkRun[]) {
  const calls: { argv: string[]; stdin: string; env: Record<string, string> }[] = [];
  const spawn = async (argv: string[], stdin: string, env: Record<string, string>) => {
    calls.push({ argv, stdin, env });
    return answers.shift() ?? { code: 0, stdout: "", stderr: "" };
  };
  return { calls, spawn };
}

describe("the options document", () => {
  test("netavark's NetworkOptions: networks as a map (netavark 1.4 reads only that), each network's file in network_info", () => {
    const o = options();
    expect(v.safeParse(SetupOptions, o).success).toBe(true);
    expect(o.networks).toEqual({
      nvtest1: { interface_name: "eth0", static_ips: ["10.89.0.5"], static_mac: "02:00:00:00:00:05", aliases: ["www", "aaaaaaaaaaaa"] },
      podman: { interface_name: "eth1", static_ips: ["10.88.0.9"] },
    });
    expect(o.network_info.nvtest1).toEqual(nvtest1());
    expect(o.port_mappings).toEqual([{ host_ip: "", host_port: 8080, container_port: 80, protocol: "tcp", range: 1 }]);
    expect(o.dns_servers).toEqual(["1.1.1.1"]);
    expect(o.container_hostname).toBe("web");
  });

  test("a hand-written network without the three booleans gets false for them (netavark requires them)", () => {
    const { ipv6_enabled: _a, internal: _b, dns_enabled: _c, ...bare } = nvtest1();
    const o = buildSetupOptions({ containerId: "x", containerName: "x", attachments: [{ network: bare, interfaceName: "eth0", staticIps: ["10.89.0.2"] }] });
    expect(o.network_info.nvtest1).toMatchObject({ ipv6_enabled: false, internal: false, dns_enabled: false });
    expect(o).not.toHaveProperty("port_mappings");
    expect(o).not.toHaveProperty("dns_servers");
  });

  test("one network twice is refused", () => {
    const a = { network: nvtest1(), interfaceName: "eth0", staticIps: ["10.89.0.2"] };
    expect(() => buildSetupOptions({ containerId: "x", containerName: "x", attachments: [a, { ...a, interfaceName: "eth1" }] })).toThrow(
      "network nvtest1 is given twice",
    );
  });
});

describe("the command line and environment", () => {
  test("argv as podman runs it: --config, --rootless=BOOL (it takes a value), --aardvark-binary, then the command and the netns", () => {
    expect(netavarkArgv(inv, "setup", "/run/netns/x")).toEqual([
      "/usr/lib/podman/netavark",
      "--config",
      "/run/user/1000/burrow/netavark",
      "--rootless=true",
      "--aardvark-binary",
      "/usr/lib/podman/aardvark-dns",
      "setup",
      "/run/netns/x",
    ]);
    expect(netavarkArgv({ binary: "nv", configDir: "/c", rootless: false }, "teardown", "/p")).toEqual([
      "nv",
      "--config",
      "/c",
      "--rootless=false",
      "teardown",
      "/p",
    ]);
  });

  test("only PATH (with the sbin directories) and the NETAVARK_* knobs reach netavark", () => {
    expect(netavarkEnv(inv, "/usr/bin:/bin")).toEqual({ PATH: "/usr/bin:/bin:/usr/sbin:/sbin" });
    expect(netavarkEnv({ ...inv, firewallDriver: "iptables", dnsPort: 1053, logLevel: "debug" }, "/bin")).toEqual({
      PATH: "/bin:/usr/sbin:/sbin",
      NETAVARK_FW: "iptables",
      NETAVARK_DNS_PORT: "1053",
      RUST_LOG: "debug",
    });
  });

  test("netavark is found in podman's helper directories, or where containers.conf says", () => {
    expect(findNetavarkHelper("netavark", { files: [], helperBinariesDir: ["/nonexistent"] }, "/nonexistent2")).toBeNull();
    expect(findNetavarkHelper("netavark", { files: [], helperBinariesDir: ["/bin"] }, "")).toBeNull();
    expect(findNetavarkHelper("sh" as "netavark", { files: [], helperBinariesDir: ["/bin"] }, "")).toBe("/bin/sh");
  });
});

describe("replies and errors", () => {
  const status = {
    nvtest1: {
      interfaces: { eth0: { mac_address: "02:00:00:00:00:05", subnets: [{ ipnet: "10.89.0.5/24", gateway: "10.89.0.1" }] } },
      dns_server_ips: ["10.89.0.1"],
      dns_search_domains: ["dns.podman"],
    },
    podman: { interfaces: {} },
  };

  test("setup sends the options on stdin and returns the validated status", async () => {
    const f = fake({ code: 0, stdout: `${JSON.stringify(status)}\n`, stderr: "" });
    const reply = await netavarkSetup(inv, "/proc/1/ns/net", options(), f.spawn);
    expect(reply.nvtest1?.dns_search_domains).toEqual(["dns.podman"]);
    expect(JSON.parse(f.calls[0]!.stdin)).toEqual(options());
    expect(f.calls).toHaveLength(1);
  });

  test("a status without one of the networks, or malformed, is refused", async () => {
    const missing = fake({ code: 0, stdout: JSON.stringify({ nvtest1: status.nvtest1 }), stderr: "" });
    await expect(netavarkSetup(inv, "/p", options(), missing.spawn)).rejects.toThrow("netavark setup's answer has no status for network podman");
    const bad = fake({ code: 0, stdout: JSON.stringify({ nvtest1: { interfaces: { eth0: { mac_address: 5 } } }, podman: {} }), stderr: "" });
    await expect(netavarkSetup(inv, "/p", options(), bad.spawn)).rejects.toThrow(
      /^netavark setup's answer is malformed: nvtest1\.interfaces\.eth0\.mac_address: /,
    );
    const notJson = fake({ code: 0, stdout: "hello", stderr: "" });
    await expect(netavarkSetup(inv, "/p", options(), notJson.spawn)).rejects.toThrow("netavark setup answered something that is not JSON: hello");
  });

  test("a failed setup is netavark's own message in one line, and is followed by a teardown with the same options", async () => {
    const f = fake(
      { code: 1, stdout: '{"error":"add default route: Netlink error: Network is unreachable (os error 101)"}\n', stderr: "[INFO] noise\n" },
      { code: 0, stdout: "", stderr: "" },
    );
    const err = (await netavarkSetup(inv, "/p", options(), f.spawn).catch((e) => e)) as BurrowError;
    expect(err.message).toBe("netavark setup failed: add default route: Netlink error: Network is unreachable (os error 101)");
    expect(err.kind).toBe("netavark");
    expect(f.calls.map((c) => c.argv.at(-2))).toEqual(["setup", "teardown"]);
    expect(f.calls[1]!.stdin).toBe(f.calls[0]!.stdin);
  });

  test("when the rollback fails too, both messages, still one line", async () => {
    const f = fake({ code: 1, stdout: '{"error":"first\\nsecond"}', stderr: "" }, { code: 1, stdout: '{"error":"cannot undo"}', stderr: "" });
    await expect(netavarkSetup(inv, "/p", options(), f.spawn)).rejects.toThrow("netavark setup failed: first; second (and its rollback failed: cannot undo)");
  });

  test("without a JSON error: clap's usage line, else stderr's last line, else the status", () => {
    expect(failureMessage({ code: 2, stdout: "", stderr: "error: unexpected argument '--rootless' found\n\nUsage: netavark ...\n" })).toBe(
      "unexpected argument '--rootless' found",
    );
    expect(failureMessage({ code: 134, stdout: "", stderr: "thread 'main' panicked\nnote: run with RUST_BACKTRACE=1\n" })).toBe(
      "note: run with RUST_BACKTRACE=1",
    );
    expect(failureMessage({ code: 137, stdout: "", stderr: "" })).toBe("exit status 137");
  });

  test("teardown: success is silence, failure netavark's message (it collects every error itself)", async () => {
    await netavarkTeardown(inv, "/p", options(), fake({ code: 0, stdout: "", stderr: "" }).spawn);
    const f = fake({ code: 1, stdout: '{"error":"netavark encountered multiple errors:\\n\\t- a\\n\\t- b"}', stderr: "" });
    await expect(netavarkTeardown(inv, "/p", options(), f.spawn)).rejects.toThrow("netavark teardown failed: netavark encountered multiple errors:; - a; - b");
  });

  test("version", async () => {
    const f = fake({ code: 0, stdout: JSON.stringify({ version: "1.4.0", commit: "", build_time: "", target: "" }), stderr: "" });
    expect((await netavarkVersion("nv", f.spawn)).version).toBe("1.4.0");
    expect(f.calls[0]!.argv).toEqual(["nv", "version"]);
    await expect(netavarkVersion("nv", fake({ code: 0, stdout: "{}", stderr: "" }).spawn)).rejects.toThrow(/^netavark version's answer is malformed: /);
  });
});

describe("a teardown after the interfaces were deleted ahead", () => {
  // netavark 1.4's answer when the sandbox's interface is gone already (measured, docs/netavark.md).
  const gone = "netavark teardown failed: failed to delete container veth eth0: Netlink error: No such device (os error 19)";
  test("only the interfaces deleted ahead, each missing: the expected answer", () => {
    expect(onlyGoneInterfaces(gone, ["eth0"])).toBe(true);
    expect(onlyGoneInterfaces(gone.replace("eth0", "eth1"), ["eth0", "eth1"])).toBe(true);
  });
  test("an interface not deleted ahead, another error, or another reason: a failure", () => {
    expect(onlyGoneInterfaces(gone, [])).toBe(false);
    expect(onlyGoneInterfaces(gone, ["eth1"])).toBe(false);
    expect(onlyGoneInterfaces(gone.replace("No such device (os error 19)", "Operation not permitted (os error 1)"), ["eth0"])).toBe(false);
    expect(onlyGoneInterfaces(`${gone}; failed to remove the DNS entry: busy`, ["eth0"])).toBe(false);
    expect(onlyGoneInterfaces("netavark teardown failed: iptables: Bad rule", ["eth0"])).toBe(false);
  });
});
