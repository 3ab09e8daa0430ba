// Issue 15 item 1: pasta connecting the shared rootless namespace of bridge
// networks, as podman 5 does with containers.conf default_rootless_network_cmd
// = "pasta" (src/net/cni/rootless-netns.ts). For both named-network backends
// (CNI and netavark): a bridge sandbox reaches a server the test starts on
// the host's loopback (through the gateway, which pasta maps to the host with
// pasta_options = ["--map-gw"]: the real internet is never used), names
// resolve on a DNS network, a published port serves, `info` names pasta and
// its pid; the pasta survives kill -9 of the daemon and a logout, a killed
// one is restarted; after rm and network rm no pasta is left. dist/burrow as
// the test user; every test ends with the context's leak check.
import { afterEach, expect, test } from "bun:test";
import { chownSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, repoRoot, testUser } from "../helpers/env.ts";
import { describeWhen } from "../helpers/requirements.ts";
import { SHARED_PASTA_CONF, sharedHelperPids, sharedPin } from "../helpers/shared-netns.ts";
import { networkInterfaces } from "node:os";
import { until } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping the shared-namespace pasta tests: ${why}`);

const BUN = `${repoRoot}/node_modules/bun/bin/bun.exe`;
const CLIENT = `${repoRoot}/test/helpers/net-client.ts`;

/** pasta for the bridges' namespace, and its gateway mapped to the host (podman's --map-gw switch, in pasta_options). */
const CONF = `${SHARED_PASTA_CONF}pasta_options = ["--map-gw"]\n`;

/** The host's IPv4 default gateway: pasta copies it into the namespace, and with --map-gw it is the host's loopback there. */
function hostGateway(): string | null {
  const r = Bun.spawnSync(["ip", "-j", "-4", "route", "show", "default"], { stdout: "pipe", stderr: "ignore" });
  try {
    return (JSON.parse(r.stdout.toString()) as { gateway?: string }[])[0]?.gateway ?? null;
  } catch {
    return null;
  }
}
const gateway = hostGateway();
if (!why && !gateway) console.warn("skipping the shared-namespace pasta tests: the host has no IPv4 default route, and pasta copies the host's");

let nextPort = 19800 + Math.floor(Math.random() * 1000);

/** A server on the host's loopback, in the test's own process: what outbound from a bridge sandbox must reach. */
function hostServer(body: string): { port: number; stop(): void } {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(body) });
  return { port: server.port!, stop: () => server.stop(true) };
}

/** A web root the test user's httpd can serve, with one page. */
function webRoot(t: BurrowContext, page: string): string {
  const www = `${t.dirs.root}/www`;
  mkdirSync(www, { recursive: true });
  writeFileSync(`${www}/index.html`, page);
  for (const p of [www, `${www}/index.html`]) chownSync(p, testUser().uid, testUser().gid);
  return www;
}

interface RootlessNetnsInfo {
  Helper: string;
  Pid?: number | null;
  Why: string;
}

async function sharedInfo(t: BurrowContext): Promise<RootlessNetnsInfo> {
  return JSON.parse(await t.burrowOk(["info", "--format", "{{json .Network.RootlessNetns}}"])) as RootlessNetnsInfo;
}

/** The published port's answer from the host, once it answers. */
const fromHost = (t: BurrowContext, port: number) =>
  until(
    async () => {
      const r = await t.run([BUN, CLIENT, "http", "127.0.0.1", String(port)]);
      return r.code === 0 ? r.stdout : null;
    },
    10_000,
    `the published port ${port}`,
  );

/** What a bridge sandbox gets from the host's loopback server through the gateway. */
const outbound = (t: BurrowContext, name: string, port: number) =>
  t.burrowOk(["exec", name, "--", "curl", "-sS", "--max-time", "5", `http://${gateway}:${port}/`]);

describeWhen(why ?? (gateway ? null : "no IPv4 default route"))("pasta for the bridge networks' shared rootless namespace", () => {
  let t: BurrowContext;
  const stops: (() => void)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) stop();
    await t.dispose();
  });

  for (const backend of ["cni", "netavark"] as const) {
    test(`${backend}: outbound to the host's loopback, names, a published port; info names pasta; nothing left after rm and network rm`, async () => {
      t = await burrowContext("rootless", { networkBackend: backend, containersConf: CONF });
      const host = hostServer(`hello from the host (${backend})\n`);
      stops.push(host.stop);
      const port = nextPort++;
      await t.burrowOk(["network", "create", "pn"]);
      const www = webRoot(t, "served from the sandbox\n");
      await t.burrowOk(["run", "-d", "--name", "web", "--network", "pn", "-p", `${port}:8080`, "--", "busybox", "httpd", "-f", "-p", "8080", "-h", www]);
      await t.burrowOk(["run", "-d", "--name", "cli", "--network", "pn", "--", "sleep", "300"]);

      // One pasta serves the namespace, no slirp4netns; info says so, with its pid.
      const pastas = sharedHelperPids(t, "pasta");
      expect(pastas).toHaveLength(1);
      expect(sharedHelperPids(t, "slirp4netns")).toEqual([]);
      const info = await sharedInfo(t);
      expect(info).toMatchObject({ Helper: "pasta", Pid: pastas[0] });
      expect(info.Why).toContain("default_rootless_network_cmd");

      expect(await outbound(t, "cli", host.port)).toBe(`hello from the host (${backend})\n`);
      // By name through the network's DNS (dnsname's dnsmasq or aardvark-dns, whose upstream is pasta's forwarder).
      const webIp = JSON.parse(await t.burrowOk(["inspect", "web"]))[0].NetworkSettings.Networks.pn.IPAddress as string;
      expect((await t.burrowOk(["exec", "cli", "--", "getent", "hosts", "web"])).split(/\s+/)[0]).toBe(webIp);
      // host.containers.internal as podman 5.3 writes it for bridge networks with pasta: Debian 12's
      // pasta maps no guest address, so the host's first address that is not also the namespace's own
      // (pasta copied those), or no entry at all (this machine's only address is the copied one).
      const inside = JSON.parse(
        await t.burrowOk(["unshare", "--", "nsenter", `--net=${sharedPin(t)}`, "--", "ip", "-j", "-4", "addr", "show", "scope", "global"]),
      ).flatMap((l: { addr_info: { local: string }[] }) => l.addr_info.map((a) => a.local)) as string[];
      const hostAddress =
        Object.values(networkInterfaces())
          .flat()
          .find((a) => a && a.family === "IPv4" && !a.internal && !a.address.startsWith("169.254.") && !inside.includes(a.address))?.address ?? null;
      const hosts = await t.burrowOk(["exec", "cli", "--", "cat", "/etc/hosts"]);
      const entry =
        hosts
          .split("\n")
          .find((l) => l.split(/\s+/).includes("host.containers.internal"))
          ?.split(/\s+/)[0] ?? null;
      expect({ entry, inside: inside.includes(entry ?? "") }).toEqual({ entry: hostAddress, inside: false });
      // The namespace's own resolv.conf names pasta's DNS forwarder first, as podman's does.
      const resolv = readFileSync(`${t.dirs.runtimeDir}/rootless-netns/resolv.conf`, "utf8");
      expect(resolv.split("\n")[0]).toBe("nameserver 169.254.1.1");
      // The builtin forwarder publishes the port; the other sandbox reaches it by name.
      expect(await fromHost(t, port)).toBe("served from the sandbox\n");
      expect(await t.burrowOk(["exec", "cli", "--", "curl", "-sS", "--max-time", "5", "http://web:8080/"])).toBe("served from the sandbox\n");

      await t.burrowOk(["rm", "-f", "web", "cli"]);
      await t.burrowOk(["network", "rm", "pn"]);
      expect(await until(() => sharedHelperPids(t, "pasta").length === 0 || null, 5000, "pasta to end")).toBe(true);
      expect(await sharedInfo(t)).toMatchObject({ Helper: "pasta" });
      expect((await sharedInfo(t)).Pid ?? null).toBeNull();
    }, 60_000);
  }

  /** A PATH holding everything /usr/bin and /usr/sbin have but `missing` (Debian's /bin is /usr/bin). */
  function pathWithout(missing: string): string {
    const dir = `${t.dirs.root}/bin-without-${missing}`;
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync("/usr/bin")) if (name !== missing) symlinkSync(`/usr/bin/${name}`, `${dir}/${name}`);
    return `${dir}:/usr/sbin`;
  }

  test("the default's helper not installed: the other one serves the namespace, and info says why (both ways)", async () => {
    // No containers.conf choice and no slirp4netns: pasta, as for a plain run.
    t = await burrowContext("rootless", { containersConf: "" });
    let env = { PATH: pathWithout("slirp4netns") };
    await t.burrowOk(["run", "-d", "--name", "b", "--network", "bridge", "--", "sleep", "300"], { env });
    expect(sharedHelperPids(t, "pasta")).toHaveLength(1);
    expect(sharedHelperPids(t, "slirp4netns")).toEqual([]);
    let info = await sharedInfo(t);
    expect(info.Helper).toBe("pasta");
    expect(info.Why).toContain("slirp4netns is not installed");
    await t.burrowOk(["rm", "-f", "b"], { env });
    expect(await until(() => sharedHelperPids(t, "pasta").length === 0 || null, 5000, "pasta to end")).toBe(true);
    await t.dispose();

    // pasta chosen in containers.conf but not installed: slirp4netns.
    t = await burrowContext("rootless", { containersConf: SHARED_PASTA_CONF });
    env = { PATH: pathWithout("pasta") };
    await t.burrowOk(["run", "-d", "--name", "b", "--network", "bridge", "--", "sleep", "300"], { env });
    expect(sharedHelperPids(t, "slirp4netns")).toHaveLength(1);
    expect(sharedHelperPids(t, "pasta")).toEqual([]);
    info = await sharedInfo(t);
    expect(info.Helper).toBe("slirp4netns");
    expect(info.Why).toContain("pasta is not installed");
    await t.burrowOk(["rm", "-f", "b"], { env });
  }, 60_000);

  test("a logout, then kill -9 of the daemon before it rebuilt anything: the next daemon finds the namespace through its pasta", async () => {
    t = await burrowContext("rootless", { containersConf: CONF });
    const host = hostServer("after both\n");
    stops.push(host.stop);
    await t.burrowOk(["run", "-d", "--name", "b", "--network", "bridge", "--", "sleep", "300"]);
    const [first] = sharedHelperPids(t, "pasta");
    const [daemon] = daemonPids(t);
    rmSync(t.dirs.runtimeDir, { recursive: true, force: true });
    process.kill(daemon!, "SIGKILL");
    // The next daemon knows the namespace only from the state dir's record, and its pasta from the ledger.
    expect(await until(async () => (await sharedInfo(t)).Pid ?? null, 5000, "the namespace pinned again")).toBe(first!);
    expect(sharedHelperPids(t, "pasta")).toEqual([first!]);
    expect(await outbound(t, "b", host.port)).toBe("after both\n");
    await t.burrowOk(["rm", "-f", "b"]);
    expect(await until(() => sharedHelperPids(t, "pasta").length === 0 || null, 5000, "pasta to end")).toBe(true);
  }, 60_000);

  test("kill -9 of the daemon and a logout keep the same pasta serving; a killed pasta is restarted and reported", async () => {
    t = await burrowContext("rootless", { containersConf: CONF });
    const host = hostServer("still here\n");
    stops.push(host.stop);
    const port = nextPort++;
    const www = webRoot(t, "served from the sandbox\n");
    await t.burrowOk(["run", "-d", "--name", "b", "--network", "bridge", "-p", `${port}:8080`, "--", "busybox", "httpd", "-f", "-p", "8080", "-h", www]);
    const [first] = sharedHelperPids(t, "pasta");
    expect(first).toBeGreaterThan(0);

    // kill -9 of the daemon: the holder starts the next one, which takes the namespace and its pasta over (the ledger keeps it).
    const [daemon] = daemonPids(t);
    process.kill(daemon!, "SIGKILL");
    expect(await fromHost(t, port)).toBe("served from the sandbox\n");
    expect(await outbound(t, "b", host.port)).toBe("still here\n");
    expect(sharedHelperPids(t, "pasta")).toEqual([first!]);
    expect((await sharedInfo(t)).Pid).toBe(first!);

    // A logout removes the runtime dir with the namespace's pin: pasta does not quit (--no-netns-quit),
    // and the daemon pins the namespace again from pasta's own handle on it (no process is inside: no DNS here).
    rmSync(t.dirs.runtimeDir, { recursive: true, force: true });
    expect(await until(async () => (await sharedInfo(t)).Pid ?? null, 5000, "the namespace pinned again")).toBe(first!);
    expect(await outbound(t, "b", host.port)).toBe("still here\n");
    expect(await fromHost(t, port)).toBe("served from the sandbox\n");
    // A sandbox made after the logout still gets podman's host.containers.internal: never one of the
    // namespace's own addresses (what pasta copied is remembered with the namespace, not only in the runtime dir).
    await t.burrowOk(["run", "-d", "--name", "late", "--network", "bridge", "--", "sleep", "300"]);
    const inside = JSON.parse(
      await t.burrowOk(["unshare", "--", "nsenter", `--net=${sharedPin(t)}`, "--", "ip", "-j", "-4", "addr", "show", "scope", "global"]),
    ).flatMap((l: { addr_info: { local: string }[] }) => l.addr_info.map((a) => a.local)) as string[];
    const late = (await t.burrowOk(["exec", "late", "--", "cat", "/etc/hosts"])).split("\n").find((l) => l.split(/\s+/).includes("host.containers.internal"));
    expect(inside.length).toBeGreaterThan(0);
    expect(inside).not.toContain(late?.split(/\s+/)[0] ?? "");
    expect(await outbound(t, "late", host.port)).toBe("still here\n");

    // Killed: a new pasta for the same namespace, reported in `burrow events`.
    process.kill(first!, "SIGKILL");
    const restarted = await until(
      async () => {
        const events = (await t.burrowOk(["events", "--stream=false", "--format", "json"]))
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as { type: string; attributes: Record<string, unknown> });
        return events.find((e) => e.type === "network-helper-restarted") ?? null;
      },
      10_000,
      "the restart event",
    );
    const [second] = sharedHelperPids(t, "pasta");
    expect(restarted.attributes).toMatchObject({ helper: "pasta", scope: "rootless-netns", oldPid: first, pid: second });
    expect(
      await until(
        async () => (await t.burrow(["exec", "b", "--", "curl", "-sS", "--max-time", "2", `http://${gateway}:${host.port}/`])).stdout || null,
        10_000,
        "outbound through the new pasta",
      ),
    ).toBe("still here\n");

    await t.burrowOk(["rm", "-f", "b", "late"]);
    expect(await until(() => sharedHelperPids(t, "pasta").length === 0 || null, 5000, "pasta to end")).toBe(true);
  }, 60_000);
});
