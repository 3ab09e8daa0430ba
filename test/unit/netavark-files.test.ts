// podman 4-6's network files (src/net/netavark/networks-dir.ts, schema.ts):
// real files podman 5.8 wrote (test/fixtures/netavark/, captured in the sid
// tier with `podman network create`), hand-written ones from the format's
// documentation, and a temporary directory for create/remove.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import type { BurrowError } from "../../src/errors.ts";
import {
  defaultNetworkConfig,
  formatNetworkFile,
  parseNetworkFile,
  planNetwork,
  podmanNetworksDir,
  readNetworks,
  removeNetworkFile,
  unservableReason,
  writeNetworkFile,
} from "../../src/net/netavark/networks-dir.ts";
import { NetworkFile, SetupReply, VersionReply } from "../../src/net/netavark/schema.ts";

const fixtures = join(import.meta.dir, "../fixtures/netavark");
const fixture = (name: string) => readFileSync(join(fixtures, `podman-5.8-${name}.json`), "utf8");
const FIXTURES = ["nvtest1", "nvtest2", "nvtest3", "nvmac", "nvnone"];

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "burrow-netavark-files-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Counting bytes, so ids and ULA subnets are predictable. */
function counter(): (n: number) => Buffer {
  let next = 0;
  return (n) => Buffer.from(Array.from({ length: n }, () => next++ & 0xff));
}

describe("the network file schema", () => {
  test("every file podman 5.8 wrote parses, and a known one field by field", () => {
    for (const name of FIXTURES) {
      const r = parseNetworkFile(`${name}.json`, fixture(name));
      expect(r).toHaveProperty("config");
    }
    const r = parseNetworkFile("nvtest3.json", fixture("nvtest3"));
    expect("config" in r && r.config).toMatchObject({
      name: "nvtest3",
      driver: "bridge",
      network_interface: "podman3",
      subnets: [{ subnet: "10.99.0.0/24", gateway: "10.99.0.254", lease_range: { start_ip: "10.99.0.10", end_ip: "10.99.0.20" } }],
      dns_enabled: false,
      options: { mtu: "1400" },
      ipam_options: { driver: "host-local" },
    });
  });

  test("fields burrow does not know are kept, at every level", () => {
    const json = JSON.parse(fixture("nvtest1"));
    json.future_field = { a: 1 };
    json.subnets[0].future_subnet_field = "x";
    const out = v.parse(NetworkFile, json);
    expect(out.future_field).toEqual({ a: 1 });
    expect((out.subnets![0] as Record<string, unknown>).future_subnet_field).toBe("x");
  });

  test("a hand-written minimal file (only name, id, driver) parses", () => {
    const id = "0".repeat(64);
    const r = parseNetworkFile("mini.json", JSON.stringify({ name: "mini", id, driver: "bridge", subnets: [{ subnet: "10.200.0.0/24" }] }));
    expect("config" in r && r.config.name).toBe("mini");
  });

  test("bad files get one reason each, naming the field", () => {
    const good = JSON.parse(fixture("nvtest1"));
    const cases: [string, string, RegExp][] = [
      ["a.json", "{", /^not valid JSON/],
      ["nvtest1.json", JSON.stringify({ ...good, id: "xyz" }), /^id: invalid network id "xyz"/],
      ["nvtest1.json", JSON.stringify({ ...good, subnets: [{ subnet: "10.89.0.0/99" }] }), /^subnets\.0\.subnet: "10\.89\.0\.0\/99" is not a CIDR subnet/],
      [
        "nvtest1.json",
        JSON.stringify({ ...good, subnets: [{ subnet: "10.89.0.0/24", gateway: "nope" }] }),
        /^subnets\.0\.gateway: "nope" is not an IP address/,
      ],
      ["nvtest1.json", JSON.stringify({ ...good, name: "bad name" }), /^name: invalid network name "bad name"/],
      ["other.json", fixture("nvtest1"), /^its name "nvtest1" does not match the file name/],
      ["nvtest1.json", JSON.stringify({ ...good, dns_enabled: "yes" }), /^dns_enabled: /],
    ];
    for (const [file, text, want] of cases) {
      const r = parseNetworkFile(file, text);
      expect("reason" in r && r.reason).toMatch(want);
      expect("reason" in r && r.reason).not.toContain("\n");
    }
  });
});

describe("the replies", () => {
  test("setup's status (as netavark 1.17 answered in the sid tier) and nulls where serde writes them", () => {
    const reply = {
      nvtest1: {
        interfaces: { eth0: { mac_address: "02:42:ac:11:00:05", subnets: [{ ipnet: "10.89.0.5/24", gateway: "10.89.0.1" }] } },
        dns_server_ips: [],
        dns_search_domains: [],
      },
      other: {
        interfaces: { eth1: { mac_address: "aa:bb:cc:dd:ee:ff", subnets: [{ ipnet: "fd00::5/64", gateway: null }] } },
        dns_server_ips: null,
        dns_search_domains: null,
      },
    };
    expect(v.safeParse(SetupReply, reply).success).toBe(true);
    expect(v.safeParse(SetupReply, { n: { interfaces: { eth0: { mac_address: "x", subnets: [{ ipnet: "10.1.2.3" }] } } } }).success).toBe(false);
  });

  test("netavark version, 1.4's shape (no default_fw_driver) and 1.17's", () => {
    expect(v.parse(VersionReply, { version: "1.4.0", commit: "", build_time: "x", target: "x86_64" }).default_fw_driver).toBeUndefined();
    expect(v.parse(VersionReply, { version: "1.17.2", commit: "", build_time: "x", target: "x", default_fw_driver: "nftables" }).default_fw_driver).toBe(
      "nftables",
    );
  });
});

describe("podman's network directory", () => {
  test("rootful /etc/containers/networks; rootless the graphroot's networks/, by default under XDG_DATA_HOME or HOME", () => {
    expect(podmanNetworksDir({ rootless: false, home: "/root" })).toBe("/etc/containers/networks");
    expect(podmanNetworksDir({ rootless: true, home: "/home/u" })).toBe("/home/u/.local/share/containers/storage/networks");
    expect(podmanNetworksDir({ rootless: true, home: "/home/u", xdgDataHome: "/d" })).toBe("/d/containers/storage/networks");
    expect(podmanNetworksDir({ rootless: true, home: "/home/u", graphRoot: "/big/storage" })).toBe("/big/storage/networks");
    expect(podmanNetworksDir({ rootless: true, networkConfigDir: "/x" })).toBe("/x");
  });

  test("lists every network podman made, the implicit default, and bad files with their reasons", () => {
    for (const name of FIXTURES) copyFileSync(join(fixtures, `podman-5.8-${name}.json`), join(dir, `${name}.json`));
    writeFileSync(join(dir, "broken.json"), "{ not json");
    writeFileSync(join(dir, "netavark.lock"), ""); // podman's lock: not a network
    writeFileSync(join(dir, ".nvtest9.json.123"), "{}"); // someone's temporary file
    const listing = readNetworks(dir, { rootless: true });
    expect(listing.networks.map((n) => n.name)).toEqual(["nvmac", "nvnone", "nvtest1", "nvtest2", "nvtest3", "podman"]);
    expect(listing.invalid).toEqual([{ file: join(dir, "broken.json"), reason: expect.stringMatching(/^not valid JSON/) }]);
    const by = Object.fromEntries(listing.networks.map((n) => [n.name, n]));
    expect(by.podman!.file).toBeNull();
    expect(by.nvtest1!.file).toBe(join(dir, "nvtest1.json"));
    expect(by.nvtest1!.unservable).toBeNull();
    expect(by.nvnone!.unservable).toBeNull();
    expect(by.nvmac!.unservable).toEqual({ field: "driver", value: "macvlan", reason: "burrow serves bridge networks only (and it needs root)" });
  });

  test("a missing directory is no networks but the default; a podman.json replaces the implicit default", () => {
    expect(readNetworks(join(dir, "nope"), { rootless: true }).networks.map((n) => n.name)).toEqual(["podman"]);
    const own = { ...defaultNetworkConfig(), subnets: [{ subnet: "10.123.0.0/16", gateway: "10.123.0.1" }] };
    writeFileSync(join(dir, "podman.json"), formatNetworkFile(own));
    const listing = readNetworks(dir, { rootless: false });
    expect(listing.networks).toHaveLength(1);
    expect(listing.networks[0]!.file).toBe(join(dir, "podman.json"));
    expect(listing.networks[0]!.config.subnets![0]!.subnet).toBe("10.123.0.0/16");
  });

  test("two files with one id: the second is listed as invalid, naming the first", () => {
    const a = JSON.parse(fixture("nvtest1"));
    writeFileSync(join(dir, "a.json"), JSON.stringify({ ...a, name: "a" }));
    writeFileSync(join(dir, "b.json"), JSON.stringify({ ...a, name: "b" }));
    const listing = readNetworks(dir, { rootless: true });
    expect(listing.networks.map((n) => n.name)).toEqual(["a", "podman"]);
    expect(listing.invalid[0]!.reason).toMatch(/^its id [0-9a-f]{12} is also network "a"'s$/);
  });

  test("the default network is podman's: sha256 id, 10.88.0.0/16 on podman0, no DNS", () => {
    const d = defaultNetworkConfig({ now: new Date(0) });
    // The id podman 5.8 showed for it in `podman network inspect podman`.
    expect(d.id).toBe("2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9");
    expect(d).toMatchObject({
      name: "podman",
      driver: "bridge",
      network_interface: "podman0",
      subnets: [{ subnet: "10.88.0.0/16", gateway: "10.88.0.1" }],
      dns_enabled: false,
    });
  });

  test("what burrow cannot serve, with the field and value", () => {
    const base = defaultNetworkConfig();
    expect(unservableReason({ ...base, driver: "ipvlan" }, false)?.reason).toBe("burrow serves bridge networks only");
    expect(unservableReason({ ...base, ipam_options: { driver: "dhcp" } }, false)).toMatchObject({ field: "ipam_options.driver", value: "dhcp" });
    expect(unservableReason({ ...base, subnets: [] }, false)).toMatchObject({ field: "subnets" });
    expect(unservableReason({ ...base, ipam_options: { driver: "none" }, subnets: undefined }, false)).toBeNull();
  });
});

describe("creating and removing networks as podman does", () => {
  const noneInUse = { subnets: [], interfaces: [] };

  test("the first network is what podman 5.8 wrote for `podman network create nvtest1`, apart from id and time", () => {
    const planned = planNetwork({ name: "nvtest1" }, [defaultNetworkConfig()], noneInUse);
    const podman = JSON.parse(fixture("nvtest1"));
    expect({ ...planned, id: "", created: "" }).toEqual({ ...podman, id: "", created: "" });
    expect(planned.id).toMatch(/^[0-9a-f]{64}$/);
    // Key order and indentation as podman's: the files read alike.
    expect(formatNetworkFile({ ...planned, id: podman.id, created: podman.created })).toBe(fixture("nvtest1"));
  });

  test("--ipv6 --internal --label as podman: the next /24, a random ULA /64, podman2", () => {
    const existing = [defaultNetworkConfig(), v.parse(NetworkFile, JSON.parse(fixture("nvtest1")))];
    const planned = planNetwork({ name: "nvtest2", ipv6: true, internal: true, labels: { a: "b" } }, existing, noneInUse, { random: counter() });
    const podman = JSON.parse(fixture("nvtest2"));
    expect(planned.subnets![0]).toEqual(podman.subnets[0]);
    expect(planned.subnets![1]!.subnet).toBe("fd00:102:304:506::/64");
    expect(planned.subnets![1]!.gateway).toBe("fd00:102:304:506::1");
    expect({ ...planned, id: "", created: "", subnets: [] }).toEqual({ ...podman, id: "", created: "", subnets: [] });
  });

  test("subnets in use on the host or by other networks are skipped; a given subnet that clashes is refused", () => {
    const planned = planNetwork({ name: "n" }, [defaultNetworkConfig()], { subnets: ["10.89.0.0/23", "10.89.3.0/24"], interfaces: ["podman0", "podman1"] });
    expect(planned.subnets).toEqual([{ subnet: "10.89.2.0/24", gateway: "10.89.2.1" }]);
    expect(planned.network_interface).toBe("podman2");
    expect(() => planNetwork({ name: "n", subnets: [{ subnet: "10.88.5.0/24" }] }, [defaultNetworkConfig()], noneInUse)).toThrow(
      /^subnet 10\.88\.5\.0\/24 is already used/,
    );
  });

  test("--subnet with gateway and range, --disable-dns, -o mtu: podman's nvtest3", () => {
    const planned = planNetwork(
      {
        name: "nvtest3",
        subnets: [{ subnet: "10.99.0.0/24", gateway: "10.99.0.254", leaseRange: { start: "10.99.0.10", end: "10.99.0.20" } }],
        dnsEnabled: false,
        options: { mtu: "1400" },
      },
      [],
      noneInUse,
    );
    const podman = JSON.parse(fixture("nvtest3"));
    expect({ ...planned, id: "", created: "", network_interface: "" }).toEqual({ ...podman, id: "", created: "", network_interface: "" });
  });

  test("--ipam-driver none: no subnets and no DNS, as podman's nvnone", () => {
    const planned = planNetwork({ name: "nvnone", ipamDriver: "none" }, [], noneInUse);
    const podman = JSON.parse(fixture("nvnone"));
    expect({ ...planned, id: "", created: "", network_interface: "" }).toEqual({ ...podman, id: "", created: "", network_interface: "" });
  });

  test("bad names and taken names are refused in one line", () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as BurrowError;
      }
      throw new Error("no error");
    };
    expect(err(() => planNetwork({ name: "-x" }, [], noneInUse)).message).toBe(
      'invalid network name "-x": use letters, digits, "_", "." and "-", starting with a letter or digit',
    );
    expect(err(() => planNetwork({ name: "podman" }, [defaultNetworkConfig()], noneInUse)).kind).toBe("network-exists");
    expect(err(() => planNetwork({ name: "x", interfaceName: "way-too-long-name" }, [], noneInUse)).kind).toBe("bad-input");
  });

  test("written 0644, atomically, never over an existing file, then read back; rm removes it and refuses the default", () => {
    const netDir = join(dir, "networks");
    const planned = planNetwork({ name: "made" }, [defaultNetworkConfig()], noneInUse);
    const path = writeNetworkFile(netDir, planned);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readdirSync(netDir)).toEqual(["made.json"]);
    expect(() => writeNetworkFile(netDir, planned)).toThrow(/already used/);
    expect(readdirSync(netDir)).toEqual(["made.json"]); // no temporary file left
    const listing = readNetworks(netDir, { rootless: true });
    expect(listing.networks.find((n) => n.name === "made")!.config).toEqual(planned);
    removeNetworkFile(netDir, "made");
    expect(readdirSync(netDir)).toEqual([]);
    expect(() => removeNetworkFile(netDir, "made")).toThrow('no network with name or id "made" found');
    expect(() => removeNetworkFile(netDir, "podman")).toThrow('default network "podman" cannot be removed');
  });
});
