import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { networkId } from "../../src/net/cni/conflist.ts";
import { formatNetworkList, formatTable, networkSummary } from "../../src/net/cni/format.ts";
import { parseCidr } from "../../src/net/cni/ip.ts";
import { DEFAULT_NETWORK, NetworkStore, resolveNetwork } from "../../src/net/cni/networks.ts";
import { rejection } from "../helpers/rejection.ts";

let dir: string;
let confDir: string;
let pluginDir: string;

function store(opts: { routes?: string[]; ifaces?: string[]; dnsname?: boolean } = {}) {
  return new NetworkStore({
    dir: confDir,
    pluginDirs: opts.dnsname === false ? [join(dir, "empty")] : [pluginDir],
    hostRoutes: () => (opts.routes ?? []).map((r) => parseCidr(r)!.subnet),
    interfaceNames: () => opts.ifaces ?? ["lo", "eth0"],
  });
}

// What `podman network create --label team=web podnet` (v3) writes, byte for
// byte: the top level is a Go map (sorted keys), the plugins are structs.
const PODMAN_V3_CONFLIST = `{
   "args": {
      "podman_labels": {
         "team": "web"
      }
   },
   "cniVersion": "0.4.0",
   "name": "podnet",
   "plugins": [
      {
         "type": "bridge",
         "bridge": "cni-podman1",
         "isGateway": true,
         "ipMasq": true,
         "hairpinMode": true,
         "ipam": {
            "type": "host-local",
            "routes": [
               {
                  "dst": "0.0.0.0/0"
               }
            ],
            "ranges": [
               [
                  {
                     "subnet": "10.89.0.0/24",
                     "gateway": "10.89.0.1"
                  }
               ]
            ]
         }
      },
      {
         "type": "portmap",
         "capabilities": {
            "portMappings": true
         }
      },
      {
         "type": "firewall",
         "backend": ""
      },
      {
         "type": "tuning"
      },
      {
         "type": "dnsname",
         "domainName": "dns.podman",
         "capabilities": {
            "aliases": true
         }
      }
   ]
}`;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "burrow-cni-unit-"));
  confDir = join(dir, "net.d");
  pluginDir = join(dir, "plugins");
  mkdirSync(pluginDir);
  writeFileSync(join(pluginDir, "dnsname"), "#!/bin/sh\n");
  chmodSync(join(pluginDir, "dnsname"), 0o755);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("the default network", () => {
  test("exists without a file or directory", async () => {
    const { networks, warnings } = await store().list();
    expect(warnings).toEqual([]);
    expect(networks.map((n) => n.name)).toEqual([DEFAULT_NETWORK]);
    const n = networks[0]!;
    expect(n.isDefault).toBe(true);
    expect(n.file).toBeNull();
    expect(n.bridge).toBe("burrow0");
    expect(n.subnets).toEqual([{ subnet: "10.89.0.0/24", gateway: "10.89.0.1" }]);
    expect(n.driver).toBe("bridge");
    expect(n.dnsEnabled).toBe(false);
    expect(n.plugins).toEqual(["bridge", "portmap", "firewall", "tuning"]);
    expect(n.id).toBe(networkId("burrow"));
    expect(existsSync(confDir)).toBe(false);
  });

  test("moves off 10.89.0.0/24 and burrow0 only when a file network holds them", async () => {
    mkdirSync(confDir);
    writeFileSync(join(confDir, "podnet.conflist"), PODMAN_V3_CONFLIST.replace("cni-podman1", "burrow0"));
    const def = await store().get(DEFAULT_NETWORK);
    expect(def.subnets[0]!.subnet).toBe("10.89.1.0/24");
    expect(def.bridge).toBe("burrow1");
    // Host routes never move it: it must be the same on every call.
    const again = await store({ routes: ["10.89.1.0/24"] }).get(DEFAULT_NETWORK);
    expect(again.subnets[0]!.subnet).toBe("10.89.1.0/24");
  });

  test("a burrow.conflist file replaces it", async () => {
    mkdirSync(confDir);
    writeFileSync(join(confDir, "burrow.conflist"), PODMAN_V3_CONFLIST.replace('"podnet"', '"burrow"'));
    const def = await store().get(DEFAULT_NETWORK);
    expect(def.file).toBe(join(confDir, "burrow.conflist"));
    expect(def.isDefault).toBe(true);
  });

  test("cannot be removed, even as a file", async () => {
    const s = store();
    const e = await rejection(s.remove(DEFAULT_NETWORK));
    expect(e.message).toBe("default network burrow cannot be removed");
    expect(e.exitCode).toBe(125);
    mkdirSync(confDir);
    writeFileSync(join(confDir, "burrow.conflist"), PODMAN_V3_CONFLIST.replace('"podnet"', '"burrow"'));
    expect((await rejection(s.remove(networkId("burrow").slice(0, 12)))).message).toBe("default network burrow cannot be removed");
  });
});

describe("podman v3's files", () => {
  test("are read as they are", async () => {
    mkdirSync(confDir);
    writeFileSync(join(confDir, "podnet.conflist"), PODMAN_V3_CONFLIST);
    const n = await store().get("podnet");
    expect(n).toMatchObject({
      name: "podnet",
      id: networkId("podnet"),
      cniVersion: "0.4.0",
      driver: "bridge",
      bridge: "cni-podman1",
      labels: { team: "web" },
      subnets: [{ subnet: "10.89.0.0/24", gateway: "10.89.0.1" }],
      internal: false,
      dnsEnabled: true,
      ipv6Enabled: false,
      isDefault: false,
    });
    expect(await store().inspect("podnet")).toEqual(JSON.parse(PODMAN_V3_CONFLIST));
  });

  test("what burrow writes has podman v3's layout and format", async () => {
    const { network: n } = await store().create({ name: "web", labels: { team: "web" } });
    const text = readFileSync(join(confDir, "web.conflist"), "utf8");
    // Same structure as podman's, with burrow's bridge, subnet and domain.
    const expected = JSON.parse(PODMAN_V3_CONFLIST);
    expected.name = "web";
    expected.plugins[0].bridge = "burrow1";
    expected.plugins[0].ipam.ranges = [[{ subnet: "10.89.1.0/24", gateway: "10.89.1.1" }]];
    expected.plugins[4].domainName = "dns.burrow";
    expect(JSON.parse(text)).toEqual(expected);
    // Key order and indentation as podman's json.MarshalIndent(..., "   ").
    expect(text).toBe(JSON.stringify(expected, null, 3));
    expect(n.file).toBe(join(confDir, "web.conflist"));
  });
});

describe("create", () => {
  test("chooses free subnets and bridges, skipping networks and host routes", async () => {
    const s = store({ routes: ["10.89.1.0/24"], ifaces: ["lo", "burrow1"] });
    const { network: a } = await s.create({ name: "a" });
    expect(a.subnets[0]!.subnet).toBe("10.89.2.0/24");
    expect(a.bridge).toBe("burrow2");
    const { network: b } = await s.create({ name: "b" });
    expect(b.subnets[0]!.subnet).toBe("10.89.3.0/24");
    expect(b.bridge).toBe("burrow3");
  });

  test("concurrent creates never share a subnet or bridge", async () => {
    const s = store();
    const made = (await Promise.all(["n1", "n2", "n3", "n4"].map((name) => s.create({ name })))).map((c) => c.network);
    expect(new Set(made.map((n) => n.subnets[0]!.subnet)).size).toBe(4);
    expect(new Set(made.map((n) => n.bridge)).size).toBe(4);
  });

  test("duplicate name: exit 125", async () => {
    const s = store();
    await s.create({ name: "dup" });
    const e = await rejection(s.create({ name: "dup" }));
    expect(e.message).toBe("network name dup already used");
    expect(e.exitCode).toBe(125);
    expect((await rejection(s.create({ name: DEFAULT_NETWORK }))).message).toBe("network name burrow already used");
  });

  test("a malformed file in the way is never overwritten", async () => {
    mkdirSync(confDir);
    writeFileSync(join(confDir, "taken.conflist"), "{ not json");
    const e = await rejection(store().create({ name: "taken" }));
    expect(e.message).toContain("network name taken already used");
    expect(readFileSync(join(confDir, "taken.conflist"), "utf8")).toBe("{ not json");
  });

  test("names follow podman's rule", async () => {
    for (const bad of ["-x", "a b", "a/b", "", "ä"]) {
      const e = await rejection(store().create({ name: bad }));
      expect(e.message).toContain(`invalid network name ${JSON.stringify(bad)}`);
    }
    await store().create({ name: "A1_b.c-d" });
  });

  test("without a name, the network is named after its bridge", async () => {
    const { network: n } = await store().create({});
    expect(n.name).toBe("burrow1");
    expect(n.bridge).toBe("burrow1");
  });

  test("given subnet, gateway and ip-range", async () => {
    const { network: n } = await store().create({ name: "g", subnets: ["192.168.77.5/24"], gateway: "192.168.77.254", ipRange: "192.168.77.128/25" });
    expect(n.subnets).toEqual([{ subnet: "192.168.77.0/24", rangeStart: "192.168.77.129", rangeEnd: "192.168.77.254", gateway: "192.168.77.254" }]);
  });

  test("bad subnet, gateway and ip-range values are named", async () => {
    const s = store({ routes: ["172.30.0.0/16"] });
    expect((await rejection(s.create({ name: "x", subnets: ["10.1.2.0"] }))).message).toBe(
      'invalid subnet "10.1.2.0": expected an address/prefix such as 10.89.5.0/24 or fd00:0:0:5::/64',
    );
    expect((await rejection(s.create({ name: "x", subnets: ["10.1.2.0/24"], gateway: "10.1.3.1" }))).message).toBe(
      "gateway 10.1.3.1 is not in subnet 10.1.2.0/24",
    );
    expect((await rejection(s.create({ name: "x", gateway: "10.1.3.1" }))).message).toBe("gateway 10.1.3.1 is not in any subnet: give --subnet too");
    expect((await rejection(s.create({ name: "x", subnets: ["10.1.2.0/24"], ipRange: "10.1.0.0/16" }))).message).toBe(
      "ip-range 10.1.0.0/16 is not inside subnet 10.1.2.0/24",
    );
    expect((await rejection(s.create({ name: "x", subnets: ["172.30.5.0/24"] }))).message).toBe(
      "subnet 172.30.5.0/24 is already used on this host (route 172.30.0.0/16)",
    );
    expect((await rejection(s.create({ name: "x", subnets: ["10.89.0.0/16"] }))).message).toBe(
      "subnet 10.89.0.0/16 is already used by network burrow (10.89.0.0/24)",
    );
    expect((await rejection(s.create({ name: "x", subnets: ["10.1.2.0/31"] }))).message).toBe(
      "subnet 10.1.2.0/31 is too small: the prefix length must be at most 30",
    );
    expect((await rejection(s.create({ name: "x", driver: "ipvlan" as "bridge" }))).message).toBe(
      'unsupported network driver "ipvlan": accepted are bridge, macvlan',
    );
    expect(existsSync(join(confDir, "x.conflist"))).toBe(false);
  });

  test("--internal: no gateway, no masquerade, no default route, no DNS (podman v3.0)", async () => {
    const { network: n, warnings } = await store().create({ name: "int", internal: true });
    expect(warnings).toEqual(["dnsname and internal networks are incompatible: DNS is not configured for network int"]);
    const bridge = n.conflist.plugins[0]!;
    expect(bridge.isGateway).toBe(false);
    expect(bridge.ipMasq).toBeUndefined();
    expect(bridge.ipam!.routes).toBeUndefined();
    expect(n.internal).toBe(true);
    expect(n.dnsEnabled).toBe(false);
  });

  test("--ipv6 adds a chosen IPv6 subnet (dual stack)", async () => {
    const { network: n } = await store({ routes: ["fd00:0:0:1::/64"] }).create({ name: "six", ipv6: true });
    expect(n.subnets.map((r) => r.subnet)).toEqual(["10.89.1.0/24", "fd00:0:0:2::/64"]);
    expect(n.subnets[1]!.gateway).toBe("fd00:0:0:2::1");
    expect(n.conflist.plugins[0]!.ipam!.routes).toEqual([{ dst: "0.0.0.0/0" }, { dst: "::/0" }]);
    expect(n.ipv6Enabled).toBe(true);
    // An IPv6 subnet given without --ipv6 makes an IPv6-only network (podman allows it).
    const { network: only6 } = await store().create({ name: "only6", subnets: ["fd12:3456::/64"] });
    expect(only6.subnets.map((r) => r.subnet)).toEqual(["fd12:3456::/64"]);
  });

  test("DNS only when the dnsname plugin is installed", async () => {
    const nodns = await store({ dnsname: false }).create({ name: "nodns" });
    expect(nodns.network.dnsEnabled).toBe(false);
    // Created anyway, with one line saying what does not work and why.
    expect(nodns.warnings).toEqual([
      expect.stringMatching(
        /^the dnsname CNI plugin is not installed \(looked in .*empty\): names and aliases do not resolve between sandboxes on network nodns$/,
      ),
    ]);
    expect((await store({ dnsname: false }).create({ name: "nodns2", disableDns: true })).warnings).toEqual([]);
    const dns = await store().create({ name: "dns" });
    expect(dns.network.dnsEnabled).toBe(true);
    expect(dns.warnings).toEqual([]);
    expect((await store().create({ name: "off", disableDns: true })).network.dnsEnabled).toBe(false);
  });

  test("macvlan: DHCP without a subnet, host-local with one; the parent must exist", async () => {
    const s = store({ ifaces: ["lo", "eth0"] });
    const { network: dhcp } = await s.create({ name: "mv", driver: "macvlan", parent: "eth0" });
    expect(dhcp.conflist.plugins).toEqual([{ type: "macvlan", master: "eth0", ipam: { type: "dhcp" } }]);
    const { network: hl } = await s.create({ name: "mv2", driver: "macvlan", parent: "eth0", subnets: ["192.168.50.0/24"] });
    expect(hl.conflist.plugins[0]!.ipam).toEqual({
      type: "host-local",
      routes: [{ dst: "0.0.0.0/0" }],
      ranges: [[{ subnet: "192.168.50.0/24", gateway: "192.168.50.1" }]],
    });
    expect(hl.driver).toBe("macvlan");
    expect((await rejection(s.create({ name: "mv3", driver: "macvlan", parent: "nope0" }))).message).toBe(
      'macvlan parent interface "nope0" does not exist on this host',
    );
  });
});

describe("list, rm, prune", () => {
  test("malformed conflists are reported by file and skipped; the rest still list", async () => {
    const s = store();
    await s.create({ name: "good" });
    writeFileSync(join(confDir, "broken.conflist"), "{ this is not json");
    writeFileSync(join(confDir, "noplugins.conflist"), JSON.stringify({ cniVersion: "0.4.0", name: "np", plugins: [] }));
    writeFileSync(join(confDir, "badname.conflist"), JSON.stringify({ cniVersion: "0.4.0", name: "bad name", plugins: [{ type: "bridge" }] }));
    writeFileSync(join(confDir, "notype.conflist"), JSON.stringify({ cniVersion: "0.4.0", name: "nt", plugins: [{ bridge: "x" }] }));
    writeFileSync(join(confDir, "zdup.conflist"), readFileSync(join(confDir, "good.conflist")));
    writeFileSync(join(confDir, "ignored.conf"), "not a conflist: other extensions are not read");
    const { networks, warnings } = await s.list();
    expect(networks.map((n) => n.name)).toEqual(["burrow", "good"]);
    expect(warnings).toHaveLength(5);
    expect(warnings[0]).toStartWith(`${join(confDir, "badname.conflist")}: name: invalid network name "bad name"`);
    expect(warnings[1]).toStartWith(`${join(confDir, "broken.conflist")}: invalid JSON:`);
    expect(warnings[2]).toBe(`${join(confDir, "noplugins.conflist")}: plugins: a network needs at least one plugin`);
    expect(warnings[3]).toStartWith(`${join(confDir, "notype.conflist")}: plugins.0.type:`);
    expect(warnings[4]).toBe(`${join(confDir, "zdup.conflist")}: network name good is already defined in ${join(confDir, "good.conflist")}`);
    // A malformed file does not break lookups of the others either.
    expect((await s.get("good")).name).toBe("good");
  });

  test("sorted by name", async () => {
    const s = store();
    for (const name of ["zeta", "alpha", "Mid", "beta"]) await s.create({ name });
    expect((await s.list()).networks.map((n) => n.name)).toEqual(["Mid", "alpha", "beta", "burrow", "zeta"]);
  });

  test("lookup by name, full ID or unique ID prefix", async () => {
    const s = store();
    const { network: n } = await s.create({ name: "web" });
    expect((await s.get(n.id)).name).toBe("web");
    expect((await s.get(n.id.slice(0, 5))).name).toBe("web");
    const e = await rejection(s.get("nosuch"));
    expect(e.message).toBe('no network with name or id "nosuch" found');
    const { networks } = await s.list();
    const fake = [...networks, { ...networks[0]!, name: "clone", id: n.id }];
    expect(() => resolveNetwork(fake, n.id.slice(0, 8))).toThrow(/ambiguous/);
  });

  test("remove deletes the file and returns the network (for its bridge)", async () => {
    const s = store();
    await s.create({ name: "gone" });
    const removed = await s.remove("gone");
    expect(removed.bridge).toBe("burrow1");
    expect(existsSync(join(confDir, "gone.conflist"))).toBe(false);
    expect((await rejection(s.remove("gone"))).message).toBe('no network with name or id "gone" found');
  });

  test("prune keeps the default and the networks in use", async () => {
    const s = store();
    for (const name of ["used", "idle1", "idle2"]) await s.create({ name });
    writeFileSync(join(confDir, "broken.conflist"), "{");
    const { removed, errors } = await s.prune(new Set(["used"]));
    expect(errors).toEqual([]);
    expect(removed.map((n) => n.name)).toEqual(["idle1", "idle2"]);
    expect((await s.list()).networks.map((n) => n.name)).toEqual(["burrow", "used"]);
    // Malformed files are not networks: prune leaves them alone.
    expect(existsSync(join(confDir, "broken.conflist"))).toBe(true);
  });
});

describe("network ls output", () => {
  test("podman-style table with 12-character IDs", async () => {
    const s = store();
    await s.create({ name: "a-much-longer-network-name" });
    const { networks } = await s.list();
    const out = formatNetworkList(networks);
    const lines = out.split("\n");
    expect(lines[0]).toBe("NETWORK ID    NAME                        DRIVER");
    expect(lines[1]).toBe(`${networkId("a-much-longer-network-name").slice(0, 12)}  a-much-longer-network-name  bridge`);
    expect(lines[2]).toBe(`${networkId("burrow").slice(0, 12)}  burrow                      bridge`);
    expect(formatNetworkList(networks, { noHeading: true }).split("\n")).toEqual(lines.slice(1));
    expect(formatNetworkList(networks, { quiet: true })).toBe("a-much-longer-network-name\nburrow");
  });

  test("tabwriter minimum width", () => {
    expect(formatTable([["A", "B", "C"]])).toBe("A           B           C");
  });

  test("JSON", async () => {
    const s = store();
    await s.create({ name: "j", labels: { k: "v" }, ipv6: true, subnets: ["10.50.0.0/24"], ipRange: "10.50.0.0/25" });
    const { networks } = await s.list();
    const json = JSON.parse(formatNetworkList(networks, { format: "json" }));
    expect(json[1]).toEqual({
      name: "j",
      id: networkId("j"),
      driver: "bridge",
      network_interface: "burrow1",
      created: expect.any(String),
      subnets: [
        { subnet: "10.50.0.0/24", gateway: "10.50.0.1", lease_range: { start_ip: "10.50.0.1", end_ip: "10.50.0.126" } },
        { subnet: "fd00:0:0:1::/64", gateway: "fd00:0:0:1::1" },
      ],
      ipv6_enabled: true,
      internal: false,
      dns_enabled: true,
      labels: { k: "v" },
      ipam_options: { driver: "host-local" },
      cni_version: "0.4.0",
      plugins: ["bridge", "portmap", "firewall", "tuning", "dnsname"],
    });
    expect(networkSummary(networks[0]!).created).toBeUndefined();
  });
});
