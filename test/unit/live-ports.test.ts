// `burrow port add|rm` values against a sandbox's recorded ports, and its
// -p list kept in step (src/ports/live.ts): pure, no daemon.
import { describe, expect, test } from "bun:test";
import { checkAdditions, formatSpec, parseRemovals, specWithout } from "../../src/ports/live.ts";
import { parsePortSpec, parsePortSpecs } from "../../src/ports/spec.ts";
import type { PortRecord } from "../../src/state/sandboxes.ts";

const rec = (hostIp: string, hostPort: number, containerPort: number, protocol: "tcp" | "udp" = "tcp"): PortRecord => ({
  hostIp,
  hostPort,
  containerPort,
  protocol,
});
const existing = [rec("", 8080, 80), rec("127.0.0.1", 5353, 53, "udp"), rec("127.0.0.1", 8443, 443)];

describe("checkAdditions", () => {
  test("reads -p values as run does: ranges and free host ports", () => {
    expect(checkAdditions(parsePortSpecs(["9000-9001:90-91", "127.0.0.1::53/udp"]), existing)).toEqual([
      rec("", 9000, 90),
      rec("", 9001, 91),
      rec("127.0.0.1", 0, 53, "udp"),
    ]);
  });
  test("a host port the sandbox already publishes is refused, naming both", () => {
    expect(() => checkAdditions(parsePortSpecs(["127.0.0.1:8080:81"]), existing)).toThrow(
      "host port 127.0.0.1:8080/tcp is already published by this sandbox (80/tcp -> 0.0.0.0:8080)",
    );
    // Another protocol or address is another socket.
    expect(checkAdditions(parsePortSpecs(["8080:80/udp", "127.0.0.2:8443:443"]), existing)).toHaveLength(2);
  });
  test("the limit counts the ports the sandbox has", () => {
    expect(() => checkAdditions(parsePortSpecs(["9000-9001:90-91"]), existing, 4)).toThrow(
      "the sandbox publishes 3 ports and these add 2: a sandbox can publish at most 4",
    );
  });
});

describe("parseRemovals", () => {
  test("HOSTPORT[/PROTO] names every mapping of that host port (tcp unless given)", () => {
    expect(parseRemovals(["8080"], existing)).toEqual([existing[0]!]);
    expect(parseRemovals(["5353/udp", "8443/tcp"], existing)).toEqual([existing[1]!, existing[2]!]);
  });
  test("a -p value must name a recorded mapping exactly, with its host port", () => {
    expect(parseRemovals(["127.0.0.1:8443:443"], existing)).toEqual([existing[2]!]);
    expect(() => parseRemovals(["8443:443"], existing)).toThrow("443/tcp -> 0.0.0.0:8443 is not published by this sandbox (its ports: 80/tcp -> 0.0.0.0:8080");
    expect(() => parseRemovals(["127.0.0.1::443"], existing)).toThrow("give the host port to remove");
    expect(() => parseRemovals(["5353"], existing)).toThrow("host port 5353/tcp is not published by this sandbox");
    expect(() => parseRemovals(["8080/sctp"], existing)).toThrow('invalid port "8080/sctp"');
    expect(() => parseRemovals(["x:y"], existing)).toThrow('invalid port "x:y"');
  });
});

describe("the -p list", () => {
  test("formatSpec writes what parsePortSpec reads back", () => {
    for (const m of [rec("", 8080, 80), rec("", 0, 80, "udp"), rec("127.0.0.1", 0, 53), rec("::1", 8080, 80), rec("10.0.0.1", 1, 2, "udp")])
      expect(parsePortSpec(formatSpec(m))).toEqual([m]);
  });
  test("specWithout drops the value that asked for a removed port, exact or free", () => {
    expect(specWithout(["8080-8081:80-81", "127.0.0.1::53/udp"], [rec("", 8081, 81)])).toEqual(["8080:80/tcp", "127.0.0.1::53/udp"]);
    expect(specWithout(["8080-8081:80-81", "127.0.0.1::53/udp"], [rec("127.0.0.1", 40000, 53, "udp")])).toEqual(["8080:80/tcp", "8081:81/tcp"]);
    expect(specWithout(["8080:80"], [rec("", 9090, 90)])).toEqual(["8080:80"]);
  });
});
