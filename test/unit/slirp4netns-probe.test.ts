import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BurrowError } from "../../src/errors.ts";
import { parseSlirp4netnsOptions } from "../../src/net/slirp4netns/options.ts";
import {
  checkSlirp4netnsFeatures,
  clearSlirp4netnsProbeCache,
  findSlirp4netns,
  parseSlirp4netnsHelp,
  probeSlirp4netns,
  type Slirp4netnsFeatures,
} from "../../src/net/slirp4netns/probe.ts";

// `slirp4netns --help` of version 1.2.0, as installed here.
const HELP_1_2 = `Usage: slirp4netns [OPTION]... PID|PATH [TAPNAME]
User-mode networking for unprivileged network namespaces.

-c, --configure          bring up the interface
-e, --exit-fd=FD         specify the FD for terminating slirp4netns
-r, --ready-fd=FD        specify the FD to write to when the network is configured
-m, --mtu=MTU            specify MTU (default=1500, max=65521)
-6, --enable-ipv6        enable IPv6 (experimental)
-a, --api-socket=PATH    specify API socket path
--cidr=CIDR              specify network address CIDR (default=10.0.2.0/24)
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--netns-type=TYPE 	 specify network namespace type ([path|pid], default=pid)
--userns-path=PATH	 specify user namespace path
--enable-sandbox         create a new mount namespace (and drop all caps except CAP_NET_BIND_SERVICE if running as the root)
--enable-seccomp         enable seccomp to limit syscalls (experimental)
--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)
--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)
--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect (experimental)
-h, --help               show this help and exit
-v, --version            show version and exit
`;
const VERSION_1_2 = "slirp4netns version 1.2.0\ncommit: 656041d45cfca7a4176f6b7eed9e4fe6c11e8383\nlibslirp: 4.7.0\n";

// An old (0.2-era) help text: no cidr, ipv6, outbound, netns-type.
const HELP_OLD = `Usage: slirp4netns [OPTION]... PID TAPNAME
-c, --configure          bring up the interface
-e, --exit-fd=FD         specify the FD for terminating slirp4netns
-r, --ready-fd=FD        specify the FD to write to when the network is configured
-m, --mtu=MTU            specify MTU (default=1500, max=65521)
`;

const all: Slirp4netnsFeatures = parseSlirp4netnsHelp("/usr/bin/slirp4netns", HELP_1_2, VERSION_1_2);
const old: Slirp4netnsFeatures = parseSlirp4netnsHelp("/opt/old/slirp4netns", HELP_OLD, "slirp4netns version 0.2.3\n");

describe("parseSlirp4netnsHelp", () => {
  test("1.2.0 has everything", () => {
    expect(all).toEqual({
      path: "/usr/bin/slirp4netns",
      version: "1.2.0",
      disableHostLoopback: true,
      mtu: true,
      enableSandbox: true,
      enableSeccomp: true,
      cidr: true,
      ipv6: true,
      outboundAddr: true,
      netnsType: true,
      apiSocket: true,
    });
  });
  test("an old version lacks most", () => {
    expect(old).toMatchObject({ version: "0.2.3", mtu: true, cidr: false, ipv6: false, netnsType: false, apiSocket: false });
  });
  test("no version output", () => {
    expect(parseSlirp4netnsHelp("/x", HELP_1_2, "").version).toBe("unknown");
  });
});

describe("checkSlirp4netnsFeatures", () => {
  const opts = (...list: string[]) => parseSlirp4netnsOptions(list, { interfaceExists: () => true });
  const withNetnsType = { ...old, netnsType: true };

  test("1.2.0 accepts every option", () => {
    expect(() =>
      checkSlirp4netnsFeatures(
        opts("cidr=10.1.0.0/24", "enable_ipv6=true", "outbound_addr=eth0", "outbound_addr6=eth0", "mtu=1500", "port_handler=slirp4netns"),
        all,
        { publishesPorts: true },
      ),
    ).not.toThrow();
  });

  const refusals: Array<[string, string[], Slirp4netnsFeatures, RegExp, boolean?]> = [
    ["no --netns-type", [], old, /needs --netns-type=path, which slirp4netns 0\.2\.3 \(\/opt\/old\/slirp4netns\) lacks: install a newer slirp4netns/],
    ["cidr", ["cidr=10.1.0.0/24"], withNetnsType, /option cidr=10\.1\.0\.0\/24 needs --cidr, which slirp4netns 0\.2\.3/],
    ["enable_ipv6", ["enable_ipv6=true"], withNetnsType, /option enable_ipv6=true needs --enable-ipv6/],
    ["outbound_addr", ["outbound_addr=eth0"], withNetnsType, /option outbound_addr=eth0 needs --outbound-addr/],
    ["outbound_addr6", ["enable_ipv6=true", "outbound_addr6=eth0"], { ...withNetnsType, ipv6: true }, /option outbound_addr6=eth0 needs --outbound-addr6/],
    ["mtu", ["mtu=1500"], { ...withNetnsType, mtu: false }, /option mtu=1500 needs --mtu/],
    ["api socket", ["port_handler=slirp4netns"], withNetnsType, /option port_handler=slirp4netns needs --api-socket/, true],
  ];
  for (const [name, list, features, message, publishesPorts] of refusals) {
    test(`refuses ${name}`, () => {
      let err: unknown;
      try {
        checkSlirp4netnsFeatures(opts(...list), features, { publishesPorts });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BurrowError);
      expect((err as BurrowError).message).toMatch(message);
    });
  }

  test("the default MTU is dropped, not refused, without --mtu (like podman)", () => {
    expect(() => checkSlirp4netnsFeatures(opts(), { ...withNetnsType, mtu: false })).not.toThrow();
  });
  test("port_handler=slirp4netns without ports needs no API socket", () => {
    expect(() => checkSlirp4netnsFeatures(opts("port_handler=slirp4netns"), withNetnsType)).not.toThrow();
  });
});

describe("probeSlirp4netns", () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-probe-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // A fake binary that counts how often it is run, to see the cache work.
  const fake = join(dir, "slirp4netns");
  const counter = join(dir, "runs");
  writeFileSync(
    fake,
    `#!/bin/sh\necho x >> ${counter}\ncase "$1" in --help) cat <<'EOF'\n${HELP_1_2}EOF\n;; --version) echo "slirp4netns version 9.9.9";; esac\n`,
  );
  chmodSync(fake, 0o755);
  const runs = () => readFileSync(counter, "utf8").split("\n").filter(Boolean).length;

  test("probes once per binary, in memory and on disk", async () => {
    clearSlirp4netnsProbeCache();
    const cachePath = join(dir, "cache", "probe.json");
    const f1 = await probeSlirp4netns({ path: fake, cachePath });
    expect(f1.version).toBe("9.9.9");
    expect(f1.apiSocket).toBe(true);
    expect(runs()).toBe(2);
    await probeSlirp4netns({ path: fake, cachePath });
    expect(runs()).toBe(2);
    clearSlirp4netnsProbeCache();
    expect(await probeSlirp4netns({ path: fake, cachePath })).toEqual(f1);
    expect(runs()).toBe(2);
    // A new binary (mtime changes) is probed again.
    utimesSync(fake, new Date(), new Date(Date.now() + 5000));
    await probeSlirp4netns({ path: fake, cachePath });
    expect(runs()).toBe(4);
  });

  test("a failing --help is reported with its output", async () => {
    const broken = join(dir, "broken");
    writeFileSync(broken, "#!/bin/sh\necho 'error while loading shared libraries: libslirp.so.0' >&2\nexit 127\n");
    chmodSync(broken, 0o755);
    await expect(probeSlirp4netns({ path: broken })).rejects.toThrow(/--help failed with exit code 127: error while loading shared libraries/);
  });

  test("a missing binary names the Debian package", () => {
    expect(() => findSlirp4netns(join(dir, "nope"))).toThrow(/install the Debian package slirp4netns/);
    const saved = process.env.PATH;
    process.env.PATH = `${dir}/empty`;
    try {
      expect(() => findSlirp4netns()).toThrow(
        /slirp4netns is not installed \(not found in containers.conf helper_binaries_dir, PATH, \/usr\/sbin or \/sbin\): install the Debian package slirp4netns/,
      );
    } finally {
      process.env.PATH = saved;
    }
  });

  test.skipIf(!Bun.which("slirp4netns"))("the installed slirp4netns", async () => {
    clearSlirp4netnsProbeCache();
    const f = await probeSlirp4netns();
    expect(f.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(f.netnsType).toBe(true);
  });
});
