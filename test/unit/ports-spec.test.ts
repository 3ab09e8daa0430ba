import { describe, expect, test } from "bun:test";
import { BurrowError } from "../../src/errors.ts";
import { formatPortLine, formatPortLines, formatPortsSummary, parsePortSpec, parsePortSpecs, type PortMapping } from "../../src/ports/spec.ts";

const m = (hostIp: string, hostPort: number, containerPort: number, protocol: "tcp" | "udp" = "tcp"): PortMapping => ({
  hostIp,
  hostPort,
  containerPort,
  protocol,
});

describe("parsePortSpec: valid forms", () => {
  const cases: Array<[string, PortMapping[]]> = [
    ["80", [m("", 0, 80)]],
    ["53/udp", [m("", 0, 53, "udp")]],
    ["8080:80", [m("", 8080, 80)]],
    ["8080:80/tcp", [m("", 8080, 80)]],
    ["8080:80/UDP", [m("", 8080, 80, "udp")]],
    [":80", [m("", 0, 80)]],
    ["127.0.0.1:8080:80", [m("127.0.0.1", 8080, 80)]],
    ["0.0.0.0:8080:80", [m("", 8080, 80)]],
    ["127.0.0.1::80", [m("127.0.0.1", 0, 80)]],
    ["[::1]:8080:80", [m("::1", 8080, 80)]],
    ["[::1]::80/udp", [m("::1", 0, 80, "udp")]],
    ["[fe80::1%eth0]:8080:80", [m("fe80::1%eth0", 8080, 80)]],
    ["8080-8082:80-82", [m("", 8080, 80), m("", 8081, 81), m("", 8082, 82)]],
    ["127.0.0.1:9000-9001:9000-9001/udp", [m("127.0.0.1", 9000, 9000, "udp"), m("127.0.0.1", 9001, 9001, "udp")]],
    ["80-81", [m("", 0, 80), m("", 0, 81)]],
    ["53:53/tcp,udp", [m("", 53, 53, "tcp"), m("", 53, 53, "udp")]],
    ["1:1", [m("", 1, 1)]],
    ["65535:65535", [m("", 65535, 65535)]],
  ];
  for (const [spec, want] of cases) {
    test(spec, () => expect(parsePortSpec(spec)).toEqual(want));
  }
});

describe("parsePortSpec: invalid forms", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /no container port/],
    ["/tcp", /no container port/],
    ["8080:", /no container port/],
    ["80/tcp/udp", /the protocol can only be given once/],
    ["80/", /the protocol after \/ is empty/],
    ["80/icmp", /unknown protocol "icmp"/],
    ["80/sctp", /sctp is not supported \(only tcp and udp\)/],
    ["http", /container port "http" is not a number/],
    ["0", /container port 0 is not between 1 and 65535/],
    ["65536", /container port 65536 is not between 1 and 65535/],
    ["-1", /container port "-1" has no start/],
    ["80-", /container port range "80-" has no end/],
    ["80-79", /container port range 80-79 must end above its start/],
    ["80-80", /container port range 80-80 must end above its start/],
    ["80-81-82", /container port "80-81-82" has more than one "-"/],
    ["x:80", /host port "x" is not a number/],
    ["70000:80", /host port 70000 is not between 1 and 65535/],
    ["8080-8081:80", /host and container port ranges have different lengths \(2 and 1\)/],
    ["8080:80-81", /host and container port ranges have different lengths \(1 and 2\)/],
    ["localhost:8080:80", /"localhost" is not an IPv4 address/],
    ["::1:8080:80", /too many colons \(an IPv6 address must be enclosed in \[\]\)/],
    [":8080:80", /the host IP before the first colon is empty/],
    ["1.2.3.4:5:6:7", /too many colons/],
    ["::1]:8080:80", /an IPv6 address must be enclosed in \[\]/],
    ["[::1:8080:80", /an IPv6 address must be enclosed in \[\]/],
    ["[::1]8080:80", /the IPv6 address must be followed by a colon/],
    ["[::1]:80", /with an IP address, give a host port/],
    ["[::1]:1:2:3", /after \[IPV6\]: give HOSTPORT:CTRPORT/],
    ["[::1]:[::2]:80", /only one IPv6 address can be given/],
    ["[1.2.3.4]:80:80", /"1.2.3.4" is not an IPv6 address/],
    ["[zz::1]:80:80", /"zz::1" is not an IPv6 address/],
    ["300.1.1.1:80:80", /"300.1.1.1" is not an IPv4 address/],
    ["8O:80", /host port "8O" is not a number/],
    [" 80", /container port " 80" is not a number/],
  ];
  for (const [spec, message] of cases) {
    test(JSON.stringify(spec), () => {
      let err: unknown;
      try {
        parsePortSpec(spec);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BurrowError);
      const msg = (err as Error).message;
      expect(msg).toMatch(message);
      expect(msg.startsWith(`invalid -p ${JSON.stringify(spec)}: `)).toBe(true);
      expect(msg).toContain("accepted forms are CTRPORT[/PROTO], HOSTPORT:CTRPORT[/PROTO]");
      expect(msg).not.toContain("\n");
    });
  }
});

describe("parsePortSpecs: duplicate host bindings", () => {
  test("distinct ones pass, random host ports never clash", () => {
    expect(parsePortSpecs(["8080:80", "8080:80/udp", "127.0.0.1:8081:80", "127.0.0.2:8081:81", "80", "80", "[::1]:8080:81"])).toHaveLength(7);
  });

  const clashes: Array<[string[], RegExp]> = [
    [["8080:80", "8080:81"], /-p "8080:81": host port 0\.0\.0\.0:8080\/tcp is already published for container port 80\/tcp/],
    [["127.0.0.1:8080:80", "8080:81"], /host port 0\.0\.0\.0:8080\/tcp is already published/],
    [["8080:80", "127.0.0.1:8080:81"], /host port 127\.0\.0\.1:8080\/tcp is already published/],
    [["8080-8085:80-85", "8083:90"], /host port 0\.0\.0\.0:8083\/tcp is already published for container port 83\/tcp/],
    [["[::]:8080:80", "[::1]:8080:81"], /host port \[::1\]:8080\/tcp/],
    [["53:53/tcp,udp", "53:54/udp"], /host port 0\.0\.0\.0:53\/udp/],
    [["0.0.0.0:8080:80", "8080:80"], /already published/],
    [["8080:80", "[::]:8080:81"], /host port \[::\]:8080\/tcp is already published/],
  ];
  for (const [specs, message] of clashes) {
    test(specs.join(" "), () => {
      expect(() => parsePortSpecs(specs)).toThrow(message);
    });
  }
});

describe("formatting", () => {
  const ports = [m("", 8080, 80), m("127.0.0.1", 5353, 53, "udp"), m("::1", 8443, 443)];

  test("burrow port lines, like podman", () => {
    expect(ports.map(formatPortLine)).toEqual(["80/tcp -> 0.0.0.0:8080", "53/udp -> 127.0.0.1:5353", "443/tcp -> [::1]:8443"]);
    expect(formatPortLines(ports)).toEqual(["80/tcp -> 0.0.0.0:8080", "53/udp -> 127.0.0.1:5353", "443/tcp -> [::1]:8443"]);
  });

  test("burrow port NAME PORT", () => {
    expect(formatPortLines(ports, "80")).toEqual(["0.0.0.0:8080"]);
    expect(formatPortLines(ports, "53/udp")).toEqual(["127.0.0.1:5353"]);
    expect(() => formatPortLines(ports, "53")).toThrow('failed to find published port "53/tcp"');
    expect(() => formatPortLines(ports, "web")).toThrow(/invalid port "web": accepted forms are PORT, PORT\/tcp or PORT\/udp/);
  });

  test("ps summary folds ranges", () => {
    expect(formatPortsSummary([...parsePortSpec("8080-8082:80-82"), ...ports.slice(1)])).toBe(
      "0.0.0.0:8080-8082->80-82/tcp, 127.0.0.1:5353->53/udp, [::1]:8443->443/tcp",
    );
    expect(formatPortsSummary([])).toBe("");
  });
});
