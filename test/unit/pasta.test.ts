import { describe, expect, test } from "bun:test";
import { BurrowError } from "../../src/errors.ts";
import { parsePastaMode, parsePastaOptions, parsePastaOptionsWithConf } from "../../src/net/pasta/options.ts";
import {
  parsePastaHelp,
  pastaArgs,
  pastaHostAddress,
  pastaNameservers,
  pastaPortArgs,
  PASTA_DNS_FORWARD,
  PASTA_GUEST_ADDR,
} from "../../src/net/pasta/process.ts";

const HELP_2023 = "--config-net --dns-forward --no-map-gw --runas --tcp-ports --udp-ports";
const features = parsePastaHelp("/usr/bin/pasta", HELP_2023, "pasta unknown version\nCopyright Red Hat\n");

describe("parsePastaMode", () => {
  test("plain pasta", () => {
    expect(parsePastaMode("pasta")).toEqual({
      args: [],
      mapGw: false,
      tcpPorts: false,
      udpPorts: false,
      tcpNs: false,
      udpNs: false,
      addresses: [],
      dnsForward: [],
      ipv4Only: false,
      ipv6Only: false,
      mapGuestAddr: null,
      pidFile: null,
    });
    expect(parsePastaMode("pasta:")).toEqual(parsePastaMode("pasta")!);
    expect(parsePastaMode("slirp4netns")).toBeNull();
    expect(parsePastaMode("pastas")).toBeNull();
  });

  test("short names become long ones, values stay with their option", () => {
    const o = parsePastaMode("pasta:-a,10.0.2.10,-m,1500,--ns-ifname=eth9,-t,8080:80,-4,--map-gw,-q")!;
    expect(o.args).toEqual(["--address", "10.0.2.10", "--mtu", "1500", "--ns-ifname", "eth9", "--tcp-ports", "8080:80", "--ipv4-only", "--quiet"]);
    expect(o).toMatchObject({ mapGw: true, tcpPorts: true, udpPorts: false, addresses: ["10.0.2.10"], ipv4Only: true });
  });

  test("--dns with an empty value disables DNS", () => {
    expect(parsePastaOptions(["--dns="]).args).toEqual(["--dns", ""]);
  });

  const invalid: Array<[string, RegExp]> = [
    ["pasta:--bogus", /unknown pasta option "--bogus": see pasta\(1\)/],
    ["pasta:-x", /unknown pasta option "-x"/],
    ["pasta:10.0.2.10", /unexpected pasta argument "10.0.2.10": options are written comma-separated with their values/],
    ["pasta:--netns,/run/netns/x", /pasta option --netns cannot be given: burrow passes the sandbox's namespace/],
    ["pasta:-P,tmp/p", /invalid pasta option --pid="tmp\/p": accepted values are absolute file paths/],
    ["pasta:--map-guest-addr,host", /invalid pasta option --map-guest-addr="host": accepted values are IPv4 or IPv6 addresses, or none/],
    ["pasta:-f", /pasta option -f cannot be given: burrow runs pasta in the background/],
    ["pasta:--runas=nobody", /pasta option --runas cannot be given/],
    ["pasta:-l,/tmp/log", /pasta option -l cannot be given: burrow chooses the log file/],
    ["pasta:-a", /pasta option -a needs a value: write -a,VALUE/],
    ["pasta:-a,300.1.1.1", /invalid pasta option --address="300.1.1.1": accepted values are IPv4 or IPv6 addresses/],
    ["pasta:--dns-forward=x", /invalid pasta option --dns-forward="x"/],
    ["pasta:-D,dns.google", /invalid pasta option --dns="dns.google"/],
    ["pasta:--mtu=70000", /invalid pasta option --mtu="70000": accepted values are 0 \(no MTU assignment\) or an integer from 68 to 65520/],
    ["pasta:-m,abc", /invalid pasta option --mtu="abc"/],
    ["pasta:-t=", /unknown pasta option "-t="/],
    ["pasta:--tcp-ports=", /the port spec is empty/],
    ["pasta:--quiet=1", /pasta option --quiet takes no value/],
    ["pasta:-4,-6", /--ipv4-only and --ipv6-only exclude each other/],
  ];
  for (const [mode, message] of invalid) {
    test(mode, () => {
      let err: unknown;
      try {
        parsePastaMode(mode);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BurrowError);
      expect((err as Error).message).toMatch(message);
    });
  }
});

describe("pastaArgs", () => {
  const base = { netnsPath: "/run/burrow/netns/x", features, logPath: "/run/x/pasta.log", pidPath: "/run/x/pasta.pid", runas: "0:0" };

  test("defaults, in podman 5's order: no automatic forwarding, no gateway mapping, DNS forwarder", () => {
    expect(pastaArgs({ ...base, options: parsePastaMode("pasta")! })).toEqual([
      "--config-net",
      "--dns-forward",
      PASTA_DNS_FORWARD,
      "--tcp-ports",
      "none",
      "--udp-ports",
      "none",
      "--tcp-ns",
      "none",
      "--udp-ns",
      "none",
      "--no-map-gw",
      "--runas",
      "0:0",
      "--log-file",
      "/run/x/pasta.log",
      "--pid",
      "/run/x/pasta.pid",
      "--quiet",
      "--netns",
      "/run/burrow/netns/x",
    ]);
  });

  test("a pasta with --map-guest-addr gets it last; the user's own wins; host.containers.internal follows it", () => {
    const newer = parsePastaHelp("/usr/bin/pasta", `${HELP_2023} --map-guest-addr`, "pasta 0.0~git20261002.cba3570-1\n");
    const args = pastaArgs({ ...base, features: newer, options: parsePastaMode("pasta")! });
    expect(args.slice(-2)).toEqual(["--map-guest-addr", PASTA_GUEST_ADDR]);
    expect(args.slice(-5, -2)).toEqual(["--quiet", "--netns", "/run/burrow/netns/x"]);
    expect(pastaHostAddress(parsePastaMode("pasta")!, newer)).toBe(PASTA_GUEST_ADDR);
    expect(pastaHostAddress(parsePastaMode("pasta")!, features)).toBeNull();
    const own = parsePastaMode("pasta:--map-guest-addr,169.254.7.7")!;
    expect(pastaArgs({ ...base, features: newer, options: own }).filter((a) => a === "--map-guest-addr")).toHaveLength(1);
    expect(pastaHostAddress(own, newer)).toBe("169.254.7.7");
    expect(pastaHostAddress(parsePastaMode("pasta:--map-guest-addr,none")!, newer)).toBeNull();
  });

  test("the shared rootless namespace's pasta outlives its pin (--no-netns-quit among burrow's own options)", () => {
    const args = pastaArgs({ ...base, options: parsePastaMode("pasta")!, outlivePin: true });
    expect(args.slice(args.indexOf("--log-file"), args.indexOf("--pid"))).toEqual(["--log-file", "/run/x/pasta.log", "--no-netns-quit"]);
    expect(pastaArgs({ ...base, options: parsePastaMode("pasta")! })).not.toContain("--no-netns-quit");
  });

  test("a user's --pid replaces burrow's", () => {
    const args = pastaArgs({ ...base, options: parsePastaMode("pasta:--pid,/tmp/mine.pid")! });
    expect(args.filter((a) => a === "--pid")).toHaveLength(1);
    expect(args[args.indexOf("--pid") + 1]).toBe("/tmp/mine.pid");
    expect(parsePastaMode("pasta:-P,/tmp/a,--pid=/tmp/b")!.args).toEqual(["--pid", "/tmp/b"]);
  });

  test("containers.conf pasta_options come first, the user's after; a bad one is named as the file's", () => {
    const o = parsePastaOptionsWithConf(["--mtu", "1400", "-T", "9000"], ["--mtu", "1500"]);
    expect(o.args).toEqual(["--mtu", "1400", "--tcp-ns", "9000", "--mtu", "1500"]);
    expect(o.tcpNs).toBe(true);
    expect(() => parsePastaOptionsWithConf(["--netns", "/x"], [])).toThrow(/^containers.conf pasta_options: pasta option --netns cannot be given/);
  });

  test("published ports and user options", () => {
    const args = pastaArgs({
      ...base,
      options: parsePastaMode("pasta:--map-gw,-T,5432,--dns-forward,10.0.2.3")!,
      ports: [
        { hostIp: "", hostPort: 8080, containerPort: 80, protocol: "tcp" },
        { hostIp: "127.0.0.1", hostPort: 5353, containerPort: 53, protocol: "udp" },
      ],
    });
    expect(args.slice(0, 9)).toEqual([
      "--config-net",
      "--tcp-ns",
      "5432",
      "--dns-forward",
      "10.0.2.3",
      "--tcp-ports",
      "8080:80",
      "--udp-ports",
      "127.0.0.1/5353:53",
    ]);
    // Only the family nobody asked for is closed.
    expect(args.slice(9, 11)).toEqual(["--udp-ns", "none"]);
    expect(args.filter((a) => a === "none")).toHaveLength(1);
    expect(args).not.toContain("--no-map-gw");
    expect(args.filter((a) => a === "--dns-forward")).toHaveLength(1);
  });

  test("random host ports must be chosen first", () => {
    expect(() => pastaPortArgs([{ hostIp: "", hostPort: 0, containerPort: 80, protocol: "tcp" }])).toThrow(
      /pasta cannot pick a random host port for container port 80\/tcp/,
    );
  });

  test("nameservers", () => {
    expect(pastaNameservers(parsePastaMode("pasta")!, features)).toEqual([PASTA_DNS_FORWARD]);
    expect(pastaNameservers(parsePastaMode("pasta:--dns-forward,10.9.9.9")!, features)).toEqual(["10.9.9.9"]);
    expect(pastaNameservers(parsePastaMode("pasta")!, { ...features, dnsForward: false })).toEqual([]);
  });

  test("version", () => {
    expect(features.version).toBe("unknown");
    expect(parsePastaHelp("/p", "", "pasta 2024_08_21.1d6142f\n").version).toBe("2024_08_21.1d6142f");
  });
});
