// podman 4's rootless network namespace, shared (issue 14: a podman
// container and a burrow sandbox on one network reach each other by name).
// Debian 12's podman 4.3 and netavark 1.4, the built binary as the test
// user with BURROW_PODMAN_USERNS=1 (podman 4 shares only when asked:
// docs/decisions.md "podman 4's namespace through an anchor container").
// Each test has a HOME and XDG_RUNTIME_DIR of its own, so podman's storage,
// its pause process and its rootless namespace are the test's alone; podman
// runs containers from a tree of the test's own with /usr bound read-only.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, testUser } from "../helpers/env.ts";
import { describeWhen, firstMissing, missingTools } from "../helpers/requirements.ts";
import { until } from "../helpers/until.ts";
import { findNetavarkHelper } from "../../src/net/netavark/run.ts";
import { podmanMajor } from "../../src/podman-pause.ts";

function podman4Missing(): string | null {
  const r = Bun.spawnSync(["podman", "--version"], { stdout: "pipe", stderr: "ignore" });
  const major = r.exitCode === 0 ? podmanMajor(r.stdout.toString()) : null;
  if (major !== 4) return `podman 4 is not the installed podman (${major === null ? "none" : `podman ${major}`}; Debian 12: apt-get install podman)`;
  return findNetavarkHelper("netavark") ? null : "netavark is not installed (apt-get install netavark aardvark-dns)";
}

const why = firstMissing(integrationUnavailable(), () => missingTools(["podman", "runc", "curl", "getent"]), podman4Missing);
if (why) console.warn(`skipping the podman 4 sharing tests: ${why}`);

describeWhen(why)("rootless, podman 4: one network namespace with podman (BURROW_PODMAN_USERNS=1)", () => {
  let t: BurrowContext;
  let env: Record<string, string | undefined>;
  let xdg: string;
  let home: string;
  let rootfs: string;
  const u = () => testUser();

  const mine = (path: string) => chownSync(path, u().uid, u().gid);

  beforeEach(async () => {
    t = await burrowContext("rootless", { networkBackend: "netavark" });
    // Not below /run, as no user's home is: podman 4 runs netavark with a /run of its own.
    home = `${u().tmpdir}/podman4-${crypto.randomUUID().slice(0, 8)}`;
    // Short: podman 4 refuses a runroot ($XDG_RUNTIME_DIR/containers) longer than 50 characters.
    xdg = `${u().runtimeDir}/p4-${crypto.randomUUID().slice(0, 8)}`;
    rootfs = `${t.dirs.root}/rootfs`;
    for (const d of [home, xdg, rootfs]) {
      mkdirSync(d, { mode: 0o700 });
      mine(d);
    }
    for (const d of ["bin", "lib", "lib64", "sbin"]) symlinkSync(`usr/${d}`, `${rootfs}/${d}`);
    const conf = `${t.dirs.root}/containers.conf`;
    // No systemd here: runc, cgroupfs, events to a file (as scripts/bench/setup-peers.sh).
    writeFileSync(conf, '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n[network]\nnetwork_backend = "netavark"\n', {
      mode: 0o644,
    });
    env = {
      HOME: home,
      XDG_RUNTIME_DIR: xdg,
      CONTAINERS_CONF: conf,
      BURROW_PODMAN_USERNS: "1",
      PODMAN_IGNORE_CGROUPSV1_WARNING: "1",
      // podman's own places, as for a user with no override.
      BURROW_NETWORKS_DIR: undefined,
      BURROW_NETAVARK_DIR: undefined,
    };
  });

  afterEach(async () => {
    try {
      await t.burrow(["rm", "-fa"], { env, timeoutMs: 60_000 });
      await t.run(["podman", "rm", "-fa", "-t", "0"], { env, timeoutMs: 60_000 });
    } finally {
      // podman's pause process (the test's own): what podman system migrate does to it.
      const pause = `${xdg}/libpod/tmp/pause.pid`;
      if (existsSync(pause)) {
        const pid = Number(readFileSync(pause, "utf8").trim());
        if (Number.isInteger(pid) && pid > 1) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {}
        }
      }
      rmSync(home, { recursive: true, force: true });
      rmSync(xdg, { recursive: true, force: true });
      await t.dispose();
    }
  });

  const burrow = (args: string[]) => t.burrowOk(args, { env, timeoutMs: 60_000 });
  const podman = (args: string[]) => t.run(["podman", ...args], { env, timeoutMs: 60_000 });
  const containers = async () => (await podman(["ps", "-a", "--format", "{{.Names}}"])).stdout.split("\n").filter(Boolean);
  const rootlessNetns = () => (existsSync(`${xdg}/netns`) ? readdirSync(`${xdg}/netns`).filter((f) => f.startsWith("rootless-netns-")) : []);

  test("a podman container and a sandbox reach each other by name; burrow's anchor goes with its last sandbox, podman's namespace with podman's last container", async () => {
    expect((await podman(["network", "create", "pshare"])).code).toBe(0);
    const www = `${t.dirs.root}/www`;
    mkdirSync(www);
    writeFileSync(`${www}/index.html`, "from-the-sandbox\n");
    mine(www);
    mine(`${www}/index.html`);
    await burrow(["run", "-d", "--network", "pshare", "--name", "bs", "--", "busybox", "httpd", "-f", "-p", "8080", "-h", www]);

    // burrow's session is in podman's user namespace, and podman keeps its
    // namespace for burrow's sandbox: the anchor is one of its containers.
    const info = JSON.parse(await burrow(["info", "--format", "json"]));
    expect(info.Host.UserNamespace).toBe("podman");
    expect(info.Network.RootlessNetns.Why).toContain("anchor container burrow-anchor-");
    const anchor = (await containers()).find((n) => n.startsWith("burrow-anchor-"));
    expect(anchor).toBeDefined();
    expect(rootlessNetns()).toHaveLength(1);

    const run = await podman(["run", "-d", "--network", "pshare", "--name", "pc", "-v", "/usr:/usr:ro", "--rootfs", rootfs, "/usr/bin/sleep", "1000"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);

    // By name both ways, through podman's one aardvark-dns.
    const sandboxIp = (await burrow(["exec", "bs", "--", "ip", "-4", "-o", "addr", "show", "eth0"])).match(/inet (\S+)\//)?.[1];
    expect(sandboxIp).toBeDefined();
    const fromPodman = await until(
      async () => {
        const r = await podman(["exec", "pc", "getent", "hosts", "bs"]);
        return r.code === 0 ? r.stdout : null;
      },
      10_000,
      "podman's container resolving bs",
    );
    expect(fromPodman.split(/\s+/)[0]).toBe(sandboxIp!);
    const page = await podman(["exec", "pc", "curl", "-sS", "--max-time", "5", "http://bs:8080/"]);
    expect(page.stdout).toBe("from-the-sandbox\n");
    const containerIp = await until(
      async () => {
        const r = await t.burrow(["exec", "bs", "--", "getent", "hosts", "pc"], { env });
        return r.code === 0 ? r.stdout.split(/\s+/)[0]! : null;
      },
      10_000,
      "the sandbox resolving pc",
    );
    const podmanView = JSON.parse((await podman(["inspect", "pc"])).stdout)[0].NetworkSettings.Networks.pshare.IPAddress;
    expect(containerIp).toBe(podmanView);

    // The sandbox leaves: the anchor goes, podman's container and namespace stay.
    await burrow(["rm", "-f", "bs"]);
    expect(await containers()).toEqual(["pc"]);
    expect(rootlessNetns()).toHaveLength(1);
    // podman's last container leaves: podman removes its namespace.
    expect((await podman(["rm", "-f", "-t", "0", "pc"])).code).toBe(0);
    await until(() => (rootlessNetns().length === 0 ? true : null), 10_000, "podman's rootless namespace removed");
    expect((await podman(["network", "rm", "pshare"])).code).toBe(0);
  }, 120_000);

  test("a sandbox alone: podman makes its namespace for burrow's anchor; a daemon killed with SIGKILL leaves both to the next; rm -f leaves nothing of podman's", async () => {
    await burrow(["run", "-d", "--network", "podman", "--name", "alone", "--", "sleep", "1000"]);
    const anchors = () => containers().then((c) => c.filter((n) => n.startsWith("burrow-anchor-")));
    expect(await anchors()).toHaveLength(1);
    expect(rootlessNetns()).toHaveLength(1);
    // Outbound through podman's slirp4netns: its gateway answers.
    const route = await burrow(["exec", "alone", "--", "ip", "-4", "route", "show", "default"]);
    expect(route).toMatch(/^default via 10\.88\.0\.1 /);

    const killed = daemonPids(t);
    expect(killed).toHaveLength(1);
    process.kill(killed[0]!, "SIGKILL");
    // The supervisor starts the next one at once: waited for is only the killed one's end.
    await until(() => (daemonPids(t).includes(killed[0]!) ? null : true), 10_000, "the killed daemon gone");
    // The next daemon adopts the namespace: a second sandbox joins it, with no second anchor.
    await burrow(["run", "-d", "--network", "podman", "--name", "second", "--", "sleep", "1000"]);
    expect(await anchors()).toHaveLength(1);
    expect(rootlessNetns()).toHaveLength(1);

    await burrow(["rm", "-f", "alone", "second"]);
    expect(await containers()).toEqual([]);
    await until(() => (rootlessNetns().length === 0 ? true : null), 10_000, "podman's rootless namespace removed with the anchor");
  }, 120_000);

  test("a session that ends with no daemon to remove the anchor (daemon and holder killed with SIGKILL): the anchor ends with the holder, and podman removes it and its namespace", async () => {
    await burrow(["run", "-d", "--network", "podman", "--name", "orphan", "--", "sleep", "1000"]);
    expect((await containers()).filter((n) => n.startsWith("burrow-anchor-"))).toHaveLength(1);
    const holder = JSON.parse(readFileSync(`${t.dirs.runtimeDir}/holder.json`, "utf8")).pid as number;
    const sandboxPid = JSON.parse(await burrow(["inspect", "orphan"]))[0].State.Pid as number;
    expect(sandboxPid).toBeGreaterThan(1);
    for (const pid of daemonPids(t)) process.kill(pid, "SIGKILL");
    process.kill(holder, "SIGKILL");
    // tail --pid looks every 2 s; then conmon's cleanup and --rm.
    await until(async () => ((await containers()).length === 0 ? true : null), 20_000, "the anchor removed by podman");
    await until(() => (rootlessNetns().length === 0 ? true : null), 10_000, "podman's rootless namespace removed");
    // The sandbox's own process outlives a holder killed under it, as in burrow's own user namespace: ended here.
    process.kill(sandboxPid, "SIGKILL");
  }, 120_000);

  test("podman rm -a takes the anchor, and podman its namespace, under a sandbox: the next sandbox is refused in one line saying so; once the old one is removed a new one joins podman's new namespace", async () => {
    await burrow(["run", "-d", "--network", "podman", "--name", "before", "--", "sleep", "1000"]);
    expect((await podman(["rm", "-fa", "-t", "0"])).code).toBe(0);
    await until(() => (rootlessNetns().length === 0 ? true : null), 10_000, "podman's rootless namespace removed with the anchor");
    const refused = await t.burrow(["run", "-d", "--network", "podman", "--name", "after", "--", "sleep", "1000"], { env, timeoutMs: 60_000 });
    expect(refused.code).toBe(125);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toContain("podman 4 removed its rootless network namespace under burrow's sandboxes");
    expect((JSON.parse(await burrow(["ps", "-a", "--format", "json"])) as Array<{ Names: string[] }>).map((s) => s.Names[0])).toEqual(["before"]);
    await burrow(["rm", "-f", "before"]);
    await burrow(["run", "-d", "--network", "podman", "--name", "after", "--", "sleep", "1000"]);
    expect((await containers()).filter((n) => n.startsWith("burrow-anchor-"))).toHaveLength(1);
    expect(rootlessNetns()).toHaveLength(1);
    await burrow(["rm", "-f", "after"]);
    expect(await containers()).toEqual([]);
  }, 120_000);

  test("an anchor podman cannot start fails the run in one line with podman's reason, exit 125, and leaves no sandbox, container, keeper or namespace", async () => {
    // podman's pause process, made while podman works; then podman's OCI runtime, named in
    // containers.conf, is not there: podman refuses the anchor's run (burrow joins the live pause
    // process without asking podman; a podman that cannot even unshare leaves burrow in its own).
    expect((await podman(["unshare", "true"])).code).toBe(0);
    const conf = `${t.dirs.root}/broken.conf`;
    writeFileSync(
      conf,
      '[engine]\nruntime = "burrow-no-such-runtime"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n[network]\nnetwork_backend = "netavark"\n',
      {
        mode: 0o644,
      },
    );
    const broken = { ...env, CONTAINERS_CONF: conf };
    const r = await t.burrow(["run", "-d", "--network", "podman", "--name", "nope", "--", "sleep", "1000"], { env: broken, timeoutMs: 60_000 });
    expect(r.code).toBe(125);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("podman 4 could not start burrow's anchor container on network podman: ");
    expect(r.stderr).toContain("burrow-no-such-runtime");
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"], { env: broken }))).toEqual([]);
    expect(await containers()).toEqual([]);
    expect(rootlessNetns()).toEqual([]);
    expect(existsSync(`${t.dirs.stateDir}/podman-netns.json`)).toBe(false);
  }, 120_000);

  test("a container of the anchor's name left behind (a daemon that could not remove it) is replaced, not a reason to fail", async () => {
    await burrow(["run", "-d", "--network", "none", "--name", "first", "--", "sleep", "1000"]);
    const holder = JSON.parse(readFileSync(`${t.dirs.runtimeDir}/holder.json`, "utf8")).pid as number;
    const stale = await podman(["create", "--name", `burrow-anchor-${holder}`, "--network", "none", "-v", "/usr:/usr:ro", "--rootfs", rootfs, "/usr/bin/true"]);
    expect(stale.code).toBe(0);
    const staleId = stale.stdout.trim();
    await burrow(["run", "-d", "--network", "podman", "--name", "joined", "--", "sleep", "1000"]);
    const ids = (await podman(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}"])).stdout.trim().split("\n");
    expect(ids).toHaveLength(1);
    expect(ids[0]).toMatch(new RegExp(`^[0-9a-f]{64} burrow-anchor-${holder} Up `));
    expect(ids[0]!.startsWith(staleId)).toBe(false);
    await burrow(["rm", "-f", "first", "joined"]);
    expect(await containers()).toEqual([]);
    expect(existsSync(`${t.dirs.stateDir}/podman-anchor`)).toBe(false);
  }, 120_000);
});
