// Bounds and clean errors (issue 10 item 6), from the built binary: each
// refusal is one line that quotes the bad value, exits 125 and leaves
// nothing behind (the context's leak check).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { burrowBin, integrationUnavailable } from "../helpers/env.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping bounds integration tests: ${why}`);

describe.skipIf(!!why)("bounds and clean errors (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  async function refused(args: string[], expected: string | RegExp, env?: Record<string, string>): Promise<void> {
    const r = await t.burrow(args, { env });
    const lines = r.stderr.trim().split("\n");
    expect({ args, code: r.code, lines: lines.length }).toEqual({ args, code: 125, lines: 1 });
    if (typeof expected === "string") expect(lines[0]).toContain(expected);
    else expect(lines[0]).toMatch(expected);
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
  }

  test("a sandbox publishes at most 1024 ports by default", async () => {
    await refused(
      ["run", "--rm", "-p", "127.0.0.1::1-65535", "--", "true"],
      '-p "127.0.0.1::1-65535": a sandbox can publish at most 1024 ports, and this makes 65535',
    );
  });

  test("BURROW_MAX_PORTS in the daemon's environment sets the limit", async () => {
    // This context's first command starts its daemon, with this environment.
    await refused(["run", "--rm", "-p", "127.0.0.1:18080-18082:80-82", "--", "true"], "a sandbox can publish at most 2 ports, and this makes 3", {
      BURROW_MAX_PORTS: "2",
    });
  });

  test("loopback, multicast and slirp4netns's own range are refused as subnets and cidr=", async () => {
    await refused(["network", "create", "--subnet", "10.0.2.0/24", "n1"], `invalid subnet "10.0.2.0/24": it overlaps slirp4netns's internal network`);
    await refused(["network", "create", "--subnet", "127.0.0.0/24", "n1"], `invalid subnet "127.0.0.0/24": it overlaps the loopback range 127.0.0.0/8`);
    await refused(["network", "create", "--subnet", "224.1.0.0/24", "n1"], "the multicast range 224.0.0.0/4");
    await refused(["run", "--rm", "--network", "slirp4netns:cidr=127.0.0.0/8", "--", "true"], 'cidr="127.0.0.0/8": it overlaps the loopback range');
    await refused(["run", "--rm", "--network", "slirp4netns:cidr=0.0.0.0/1", "--", "true"], 'cidr="0.0.0.0/1": it overlaps the "this network" range');
    expect(JSON.parse(await t.burrowOk(["network", "ls", "--format", "json"])).map((n: { name: string }) => n.name)).not.toContain("n1");
  });

  test("ns: on a file that is no network namespace is a clear error, not a raw EINVAL", async () => {
    await refused(["run", "--rm", "--network", "ns:/etc/passwd", "--", "true"], 'network namespace path "/etc/passwd" is not a network namespace');
  });

  test("aliases like hostnames, unicast MACs, and a static IP inside the network: checked before any plugin runs", async () => {
    await t.burrowOk(["network", "create", "--subnet", "10.89.77.0/24", "n1"]);
    const run = (...flags: string[]) => ["run", "--rm", "--network", "n1", ...flags, "--", "true"];
    await refused(run("--network-alias", "a b"), 'invalid network alias "a b": use a hostname');
    await refused(run("--network-alias", "x\ny"), 'invalid network alias "x\\ny"');
    await refused(run("--network-alias", "a".repeat(300)), `invalid network alias "${"a".repeat(60)}…"`);
    await refused(run("--mac-address", "ff:ff:ff:ff:ff:ff"), 'invalid MAC address "ff:ff:ff:ff:ff:ff": it is a multicast or broadcast address');
    await refused(run("--mac-address", "01:00:5e:00:00:01"), "multicast or broadcast");
    await refused(run("--ip", "10.89.78.5"), `--ip "10.89.78.5" is not in network n1's subnet (10.89.77.0/24)`);
    await refused(run("--ip", "10.89.77.1"), `--ip "10.89.77.1" is network n1's gateway`);
    await refused(run("--ip", "10.89.77.255"), `--ip "10.89.77.255" is outside network n1's address range 10.89.77.1-10.89.77.254`);
    await refused(run("--ip", "nope"), 'invalid IP address "nope"');
    await refused(["network", "connect", "--alias", "bad alias", "n1", "nosuch"], 'invalid network alias "bad alias"');
  });

  test("output into a closed pipe ends quietly (no EPIPE stack trace)", async () => {
    await t.burrowOk(["network", "create", "n2"]);
    // `true` has exited before burrow writes: its stdout has no reader.
    const r = await t.run(["sh", "-c", `(sleep 0.3; ${burrowBin()} network ls; echo "rc=$?" >&2) | true`]);
    expect(r.stderr).toBe("rc=141\n");
  });

  test("so does run -d, which makes its output streams only when it prints (issue 17)", async () => {
    const r = await t.run(["sh", "-c", `(sleep 0.3; ${burrowBin()} run -d --name piped --network none -- sleep 60; echo "rc=$?" >&2) | true`]);
    expect(r.stderr).toBe("rc=141\n");
    await t.burrowOk(["rm", "-f", "piped"]);
  });
});
