// The network-backend conformance suite: every backend that gives a sandbox
// its own network passes the same cases through the built binary. Adding a
// backend means adding a line to BACKENDS (and one to conformance-ports for
// its port driver).
//
// Cases: the sandbox has an address and a default route, a nameserver in
// resolv.conf, its name in /etc/hosts on its own address, a published port
// reachable from the host, `exec` in the same network, and after `rm` no
// row, process, mount, link or rule is left (the context's leak check).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, repoRoot, testUser } from "../helpers/env.ts";
import type { Mode } from "../helpers/run.ts";
import { until } from "../helpers/until.ts";
import { describeWhen } from "../helpers/requirements.ts";
import { SHARED_PASTA_CONF } from "../helpers/shared-netns.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping the network-backend conformance suite: ${why}`);

const BUN = `${repoRoot}/node_modules/bun/bin/bun.exe`;
const CLIENT = `${repoRoot}/test/helpers/net-client.ts`;

interface BackendCase {
  backend: string;
  mode: Mode;
  network: string;
  /** Which backend serves named networks (CNI unless given). */
  networkBackend?: "cni" | "netavark";
  /** The test's own containers.conf (e.g. pasta for the bridges' shared rootless namespace). */
  containersConf?: string;
}

const BACKENDS: BackendCase[] = [
  { backend: "slirp4netns", mode: "rootless", network: "slirp4netns" },
  { backend: "pasta", mode: "rootless", network: "pasta" },
  { backend: "CNI bridge (rootless)", mode: "rootless", network: "bridge" },
  { backend: "CNI bridge (rootful)", mode: "rootful", network: "bridge" },
  { backend: "netavark bridge (rootless)", mode: "rootless", network: "bridge", networkBackend: "netavark" },
  // Bridges whose shared rootless namespace pasta connects (issue 15 item 1).
  { backend: "CNI bridge (rootless, pasta namespace)", mode: "rootless", network: "bridge", containersConf: SHARED_PASTA_CONF },
  {
    backend: "netavark bridge (rootless, pasta namespace)",
    mode: "rootless",
    network: "bridge",
    networkBackend: "netavark",
    containersConf: SHARED_PASTA_CONF,
  },
  { backend: "netavark bridge (rootful)", mode: "rootful", network: "bridge", networkBackend: "netavark" },
];

// Below the ephemeral range (32768+) and apart from the other files' port ranges.
let nextPort = 18200 + Math.floor(Math.random() * 1500);

describeWhen(why)("network backend conformance", () => {
  let t: BurrowContext;
  afterEach(async () => {
    await t.dispose();
  });

  for (const b of BACKENDS) {
    describe(b.backend, () => {
      beforeEach(async () => {
        t = await burrowContext(b.mode, { networkBackend: b.networkBackend, containersConf: b.containersConf });
      });

      test("address, route, resolv.conf, hosts, a published port and exec; nothing left after rm", async () => {
        const port = nextPort++;
        const www = `${t.dirs.root}/www`;
        mkdirSync(www, { recursive: true });
        writeFileSync(`${www}/index.html`, "served from the sandbox\n");
        if (t.mode === "rootless") {
          chownSync(www, testUser().uid, testUser().gid);
          chownSync(`${www}/index.html`, testUser().uid, testUser().gid);
        }
        const id = (
          await t.burrowOk([
            "run",
            "-d",
            "--name",
            "net",
            "--network",
            b.network,
            "-p",
            `${port}:8080`,
            "--",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            www,
          ])
        ).trim();
        expect(id).toMatch(/^[0-9a-f]{64}$/);
        const inside = (cmd: string) => t.burrowOk(["exec", "net", "--", "sh", "-c", cmd]);

        const addrs = JSON.parse(await inside("ip -j -4 addr show scope global")) as Array<{ ifname: string; addr_info: Array<{ local: string }> }>;
        const own = addrs.flatMap((a) => a.addr_info.map((x) => x.local));
        expect(own.length).toBeGreaterThan(0);
        expect(await inside("ip -4 route show default")).toMatch(/^default via \S+/);

        const resolv = await inside("cat /etc/resolv.conf");
        expect(resolv).toMatch(/^nameserver \S+$/m);

        // The sandbox's name on one of its own addresses (podman's rule).
        const hosts = await inside("cat /etc/hosts");
        const line = hosts.split("\n").find((l) => l.split(/\s+/).slice(1).includes("net"));
        expect(line).toBeDefined();
        expect(own).toContain(line!.split(/\s+/)[0]!);

        // From the host (the test netns, rootful) through the published port.
        const got = await until(
          async () => {
            const r = await t.run([BUN, CLIENT, "http", "127.0.0.1", String(port)]);
            return r.code === 0 ? r.stdout : null;
          },
          10_000,
          `the published port ${port}`,
        );
        expect(got).toBe("served from the sandbox\n");

        await t.burrowOk(["rm", "-f", "net"]);
        expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
        const after = await t.run([BUN, CLIENT, "http", "127.0.0.1", String(port)]);
        expect(after.code).toBe(1);
      }, 60_000);
    });
  }
});
