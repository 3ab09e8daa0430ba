// Restart policies, start, restart, wait and generate systemd, end to end:
// dist/burrow as the test user (rootless) and, for the bridge case, as root
// in a test-made netns.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { burrowContext, type BurrowContext, daemonPidsOf as daemonPids } from "../helpers/context.ts";
import { burrowBin, integrationUnavailable, testUser } from "../helpers/env.ts";
import { listPids } from "../helpers/netns.ts";
import { until } from "../helpers/until.ts";
import { fetchFromHost, inspect } from "../helpers/published.ts";
import { startedAhead } from "../helpers/sys.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping restart integration tests: ${why}`);

// Below the ephemeral range (32768-60999 here: an outgoing connection may take such a port
// at any time) and apart from the other files' ranges.
let nextPort = 29000 + Math.floor(Math.random() * 2000);
const hostPort = () => nextPort++;

/** busybox httpd serving "<name>\n" on 8080 inside the sandbox. */
function webDir(t: BurrowContext, name: string): string {
  const dir = `${t.dirs.root}/www-${name}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/index.html`, `${name}\n`);
  if (t.mode === "rootless") {
    chownSync(dir, testUser().uid, testUser().gid);
    chownSync(`${dir}/index.html`, testUser().uid, testUser().gid);
  }
  return dir;
}
const httpd = (dir: string) => ["busybox", "httpd", "-f", "-p", "8080", "-h", dir];

/** Running with a pid other than `old`. */
async function respawned(t: BurrowContext, name: string, old: number, ms = 15000): Promise<number> {
  return until(
    async () => {
      const s = await inspect(t, name);
      return s.State.Running && s.State.Pid > 0 && s.State.Pid !== old ? (s.State.Pid as number) : null;
    },
    ms,
    `${name} to come back with a new pid`,
  );
}

/** Processes whose environment or command line names `needle`, filtered by argv. */
function procsWith(needle: string, pick: (argv: string[]) => boolean): number[] {
  return listPids().filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (!pick(argv)) return false;
      return argv.join(" ").includes(needle) || readFileSync(`/proc/${pid}/environ`, "utf8").includes(needle);
    } catch {
      return false;
    }
  });
}

describe.skipIf(!!why)("restart policies (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("--restart on-failure:2: kill -9 brings a new pid that serves the port again; after two restarts it stays exited", async () => {
    const port = hostPort();
    const dir = webDir(t, "web");
    await t.burrowOk(["run", "-d", "--name", "web", "--restart", "on-failure:2", "-p", `${port}:8080`, "--", ...httpd(dir)]);
    expect(await until(() => fetchFromHost(t, port), 10000, "first serve")).toBe("web\n");
    let s = await inspect(t, "web");
    expect(s.HostConfig.RestartPolicy).toEqual({ Name: "on-failure", MaximumRetryCount: 2 });
    expect(s.RestartCount).toBe(0);
    const ip = s.NetworkSettings.IPAddress;

    const pid0 = s.State.Pid as number;
    process.kill(pid0, "SIGKILL");
    const pid1 = await respawned(t, "web", pid0);
    expect(await until(() => fetchFromHost(t, port), 10000, "serve after restart 1")).toBe("web\n");
    s = await inspect(t, "web");
    expect(s.RestartCount).toBe(1);
    expect(s.NetworkSettings.IPAddress).toBe(ip);
    expect(s.NetworkSettings.Ports["8080/tcp"]).toEqual([{ HostIp: "", HostPort: String(port) }]);

    process.kill(pid1, "SIGKILL");
    const pid2 = await respawned(t, "web", pid1);
    expect((await inspect(t, "web")).RestartCount).toBe(2);
    expect(await until(() => fetchFromHost(t, port), 10000, "serve after restart 2")).toBe("web\n");

    // The third failure is past the limit: exited for good, port released.
    process.kill(pid2, "SIGKILL");
    const waited = await t.burrow(["wait", "web"], { timeoutMs: 20000 });
    expect(waited.code).toBe(0);
    expect(waited.stdout).toBe("137\n");
    s = await inspect(t, "web");
    expect(s.State.Status).toBe("exited");
    expect(s.State.ExitCode).toBe(137);
    expect(s.RestartCount).toBe(2);
    await Bun.sleep(600);
    expect((await inspect(t, "web")).State.Status).toBe("exited");
    expect(await fetchFromHost(t, port)).toBeNull();
    await t.burrowOk(["rm", "web"]);
  }, 90000);

  test("a command that fails at once is restarted with back-off, shown as Restarting, and rm -f ends it for good", async () => {
    await t.burrowOk(["run", "-d", "--name", "crashy", "--network", "none", "--restart", "always", "--", "sh", "-c", "exit 3"]);
    const row = await until(
      async () => {
        const ps = JSON.parse(await t.burrowOk(["ps", "--format", "json"]));
        return ps.find((r: { Status: string }) => r.Status.startsWith("Restarting (3)"));
      },
      5000,
      "ps to show Restarting (3)",
    );
    expect(row.State).toBe("restarting");
    await Bun.sleep(1500);
    // 100 + 200 + 400 + 800 ms of back-off: a few restarts, not hundreds.
    const restarts = (await inspect(t, "crashy")).RestartCount as number;
    expect(restarts).toBeGreaterThanOrEqual(2);
    expect(restarts).toBeLessThanOrEqual(8);
    const table = await t.burrowOk(["ps"]);
    expect(table).toContain("crashy");
    await t.burrowOk(["rm", "-f", "crashy"]);
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    await Bun.sleep(1000);
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);

    // stop during the back-off: exited with the command's status, and it stays so
    await t.burrowOk(["run", "-d", "--name", "crashy2", "--network", "none", "--restart", "on-failure", "--", "sh", "-c", "exit 4"]);
    await until(async () => (await inspect(t, "crashy2")).RestartCount >= 1, 5000, "a first restart");
    await t.burrowOk(["stop", "crashy2"]);
    let s = await inspect(t, "crashy2");
    expect(s.State.Status).toBe("exited");
    expect(s.State.ExitCode).toBe(4);
    const count = s.RestartCount;
    await Bun.sleep(1000);
    s = await inspect(t, "crashy2");
    expect(s.State.Status).toBe("exited");
    expect(s.RestartCount).toBe(count);
    await t.burrowOk(["rm", "crashy2"]);
  }, 60000);

  test("the daemon does not idle-exit while a restart-policy sandbox is supervised, even in its back-off", async () => {
    const idle = { env: { BURROW_IDLE_TIMEOUT: "1" } };
    await t.burrowOk(["run", "-d", "--name", "loop", "--network", "none", "--restart", "always", "--", "sh", "-c", "sleep 0.2; exit 1"], idle);
    const [daemon] = daemonPids(t.dirs.runtimeDir);
    expect(daemon).toBeGreaterThan(0);
    await Bun.sleep(3500);
    expect(daemonPids(t.dirs.runtimeDir)).toEqual([daemon!]);
    expect((await inspect(t, "loop")).RestartCount).toBeGreaterThanOrEqual(3);
    await t.burrowOk(["rm", "-f", "loop"]);
    // with nothing left to supervise, it does exit when idle
    await until(() => daemonPids(t.dirs.runtimeDir).length === 0, 10000, "idle exit");
  }, 30000);

  test("--restart always survives a daemon SIGKILL: the command is brought back and serves again", async () => {
    const port = hostPort();
    const dir = webDir(t, "keep");
    await t.burrowOk(["run", "-d", "--name", "keep", "--restart", "always", "-p", `${port}:8080`, "--", ...httpd(dir)]);
    expect(await until(() => fetchFromHost(t, port), 10000, "first serve")).toBe("keep\n");
    const pid0 = (await inspect(t, "keep")).State.Pid as number;
    const [daemon] = daemonPids(t.dirs.runtimeDir);
    expect(daemon).toBeGreaterThan(0);
    process.kill(daemon!, "SIGKILL");
    await until(() => !daemonPids(t.dirs.runtimeDir).includes(daemon!), 5000, "daemon gone");
    // The command dies while no daemon watches it.
    process.kill(pid0, "SIGKILL");
    await Bun.sleep(200);
    // The next command starts a daemon, which sees the exit and restarts it.
    const pid1 = await respawned(t, "keep", pid0);
    expect(pid1).not.toBe(pid0);
    expect(await until(() => fetchFromHost(t, port), 10000, "serve after daemon restart")).toBe("keep\n");
    expect((await inspect(t, "keep")).RestartCount).toBe(1);
    // the daemon does not idle-exit while a restart-policy sandbox runs
    expect(daemonPids(t.dirs.runtimeDir)).toHaveLength(1);
    await t.burrowOk(["rm", "-f", "keep"]);
  }, 60000);

  for (const helper of ["slirp4netns", "pasta"] as const)
    test(`a dead ${helper} is started again with the sandbox's restart; the port serves again`, async () => {
      const port = hostPort();
      const dir = webDir(t, "heal");
      await t.burrowOk(["run", "-d", "--name", "heal", "--restart", "on-failure", "--network", helper, "-p", `${port}:8080`, "--", ...httpd(dir)]);
      expect(await until(() => fetchFromHost(t, port), 10000, "first serve")).toBe("heal\n");
      // The sandbox's own: not one started ahead for the next sandbox.
      const slirp = procsWith(t.dirs.runtimeDir, (argv) => argv[0]!.endsWith(helper) && !startedAhead(argv));
      expect(slirp).toHaveLength(1);
      process.kill(slirp[0]!, "SIGKILL");
      const pid0 = (await inspect(t, "heal")).State.Pid as number;
      process.kill(pid0, "SIGKILL");
      await respawned(t, "heal", pid0);
      expect(await until(() => fetchFromHost(t, port), 10000, `serve after ${helper} restart`)).toBe("heal\n");
      const again = procsWith(t.dirs.runtimeDir, (argv) => argv[0]!.endsWith(helper) && !startedAhead(argv));
      expect(again).toHaveLength(1);
      expect(again[0]).not.toBe(slirp[0]);
      expect((await inspect(t, "heal")).State.Error).toBe("");
      await t.burrowOk(["rm", "-f", "heal"]);
    }, 60000);

  test("stop ends an unless-stopped sandbox for good; start brings it back with its port published again", async () => {
    const port = hostPort();
    const dir = webDir(t, "us");
    await t.burrowOk(["run", "-d", "--name", "us", "--restart", "unless-stopped", "-p", `${port}:8080`, "--", ...httpd(dir)]);
    expect(await until(() => fetchFromHost(t, port), 10000, "first serve")).toBe("us\n");
    await t.burrowOk(["stop", "-t", "1", "us"]);
    await Bun.sleep(800);
    let s = await inspect(t, "us");
    expect(s.State.Status).toBe("exited");
    expect(s.RestartCount).toBe(0);
    expect(await fetchFromHost(t, port)).toBeNull();
    expect(await t.burrowOk(["start", "us"])).toBe("us\n");
    expect(await until(() => fetchFromHost(t, port), 10000, "serve after start")).toBe("us\n");
    s = await inspect(t, "us");
    expect(s.State.Running).toBe(true);
    expect(s.NetworkSettings.SandboxKey).not.toBe("");
    // start of a running sandbox changes nothing
    const pid = s.State.Pid;
    expect(await t.burrowOk(["start", "us"])).toBe("us\n");
    expect((await inspect(t, "us")).State.Pid).toBe(pid);
    // the policy still holds after a start
    process.kill(pid, "SIGKILL");
    await respawned(t, "us", pid);
    expect(await until(() => fetchFromHost(t, port), 10000, "serve after policy restart")).toBe("us\n");
    await t.burrowOk(["rm", "-f", "us"]);
  }, 60000);

  test("restart keeps the sandbox's namespaces even while another of its processes ignores SIGTERM", async () => {
    const port = hostPort();
    const dir = webDir(t, "stubborn");
    await t.burrowOk([
      "run",
      "-d",
      "--name",
      "stubborn",
      "-p",
      `${port}:8080`,
      "--",
      "sh",
      "-c",
      `(trap '' TERM; exec sleep 1000) & exec ${httpd(dir).join(" ")}`,
    ]);
    expect(await until(() => fetchFromHost(t, port), 10000, "first serve")).toBe("stubborn\n");
    const netns = await t.burrowOk(["exec", "stubborn", "--", "readlink", "/proc/self/ns/net"]);
    const before = await inspect(t, "stubborn");
    await t.burrowOk(["restart", "-t", "2", "stubborn"]);
    const after = await inspect(t, "stubborn");
    expect(after.State.Running).toBe(true);
    expect(after.State.Pid).not.toBe(before.State.Pid);
    expect(after.RestartCount).toBe(0);
    expect(await t.burrowOk(["exec", "stubborn", "--", "readlink", "/proc/self/ns/net"])).toBe(netns);
    expect(await until(() => fetchFromHost(t, port), 10000, "serve after restart")).toBe("stubborn\n");
    await t.burrowOk(["rm", "-f", "stubborn"]);
  }, 60000);

  test("start of an exited sandbox whose host port is taken is refused and rolled back; it stays exited", async () => {
    const port = hostPort();
    const dir = webDir(t, "a");
    await t.burrowOk(["run", "-d", "--name", "a", "-p", `${port}:8080`, "--", ...httpd(dir)]);
    expect(await until(() => fetchFromHost(t, port), 10000, "first serve")).toBe("a\n");
    await t.burrowOk(["stop", "-t", "1", "a"]);
    await t.burrowOk(["run", "-d", "--name", "b", "-p", `${port}:8080`, "--", ...httpd(dir)]);
    const r = await t.burrow(["start", "a"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`${port}`);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const s = await inspect(t, "a");
    expect(s.State.Status).toBe("exited");
    expect(s.NetworkSettings.SandboxKey).toBe("");
    expect(await fetchFromHost(t, port)).toBe("a\n"); // b serves the same directory
    await t.burrowOk(["rm", "-f", "b"]);
    await t.burrowOk(["start", "a"]);
    expect(await until(() => fetchFromHost(t, port), 10000, "serve after start")).toBe("a\n");
    await t.burrowOk(["rm", "-f", "a"]);
  }, 60000);

  test("wait prints the exit code (and JSON with --format json); start runs an exited command again", async () => {
    await t.burrowOk(["run", "-d", "--name", "w5", "--network", "none", "--", "sh", "-c", "sleep 0.5; exit 5"]);
    const r = await t.burrow(["wait", "w5"], { timeoutMs: 15000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("5\n");
    const j = JSON.parse(await t.burrowOk(["wait", "--format", "json", "w5"]));
    expect(j).toEqual([{ Id: expect.stringMatching(/^[0-9a-f]{64}$/), Name: "w5", ExitCode: 5 }]);
    // start runs the recorded command again
    await t.burrowOk(["start", "w5"]);
    expect(await t.burrowOk(["wait", "w5"], { timeoutMs: 15000 })).toBe("5\n");
    const missing = await t.burrow(["wait", "nosuch"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("nosuch");
    await t.burrowOk(["rm", "w5"]);
  }, 60000);

  test("start of a kept foreground sandbox runs its command with the environment it was run with", async () => {
    // The first run prints to the caller; the started one to the sandbox's log.
    const first = await t.burrow(["run", "--name", "fg", "--network", "none", "--", "sh", "-c", 'echo "foo=$BURROW_T_FOO path=$PATH"'], {
      env: { BURROW_T_FOO: "bar" },
    });
    expect(first.code).toBe(0);
    expect(first.stdout).toStartWith("foo=bar path=");
    await t.burrowOk(["start", "fg"]);
    expect(await t.burrowOk(["wait", "fg"], { timeoutMs: 15000 })).toBe("0\n");
    expect(await t.burrowOk(["logs", "fg"])).toBe(first.stdout);
    await t.burrowOk(["rm", "fg"]);
  }, 30000);

  test("a policy restart and a later start keep -t, -w, -e, --user and --label: every run has a pty, the same workdir, env and ids", async () => {
    const script = 'echo "run tty=$(tty) pwd=$(pwd) ids=$(id -u):$(id -g) mark=$MARK"; exit 3';
    await t.burrowOk([
      ...["run", "-d", "-t", "--name", "tt", "--network", "none", "--restart", "on-failure:1"],
      ...["-w", "/usr/share", "-e", "MARK=x1", "--user", "1000:1000", "--label", "app=tt"],
      ...["--", "sh", "-c", script],
    ]);
    const runs = async () =>
      (await t.burrowOk(["logs", "tt"]))
        .replaceAll("\r", "")
        .split("\n")
        .filter((l) => l.startsWith("run "));
    // One restart (on-failure:1), then exited for good with the command's status.
    expect(await t.burrowOk(["wait", "tt"], { timeoutMs: 20000 })).toBe("3\n");
    expect((await inspect(t, "tt")).RestartCount).toBe(1);
    expect(await runs()).toHaveLength(2);
    // start makes the sandbox again from its spec: the same flags, a fresh count.
    await t.burrowOk(["start", "tt"]);
    expect(await t.burrowOk(["wait", "tt"], { timeoutMs: 20000 })).toBe("3\n");
    const s = await inspect(t, "tt");
    expect(s.RestartCount).toBe(1);
    expect(s.Config.Labels).toEqual({ app: "tt" });
    const all = await runs();
    expect(all).toHaveLength(4);
    for (const l of all) expect(l).toMatch(/^run tty=\/dev\/pts\/\d+ pwd=\/usr\/share ids=1000:1000 mark=x1$/);
    await t.burrowOk(["rm", "tt"]);
  }, 60000);

  test("bad policies and --rm with a policy that never ends are refused like podman, leaving nothing", async () => {
    const cases: Array<[string[], string]> = [
      [["--restart", "sometimes"], 'invalid restart policy "sometimes"'],
      [["--restart", "always:3"], "retries can only be specified with the on-failure"],
      [["--restart", "on-failure:x"], "retry count must be a whole number"],
      [["--restart", "on-failure:1:2"], "at most once"],
      [["--rm", "--restart", "always"], "the --rm option conflicts with --restart"],
    ];
    for (const [flags, msg] of cases) {
      const r = await t.burrow(["run", "-d", ...flags, "--network", "none", "--", "sleep", "30"]);
      expect(r.code).toBe(125);
      expect(r.stderr).toContain(msg);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    const fg = await t.burrow(["run", "--restart", "always", "--network", "none", "--", "true"]);
    expect(fg.code).toBe(125);
    expect(fg.stderr).toContain("needs -d");
    // never/no are accepted; --rm with on-failure too
    await t.burrowOk(["run", "-d", "--name", "n1", "--restart", "never", "--network", "none", "--", "true"]);
    expect((await inspect(t, "n1")).HostConfig.RestartPolicy).toEqual({ Name: "no", MaximumRetryCount: 0 });
    await t.burrowOk(["rm", "-f", "n1"]);
    await t.burrowOk(["run", "-d", "--rm", "--restart", "on-failure", "--network", "none", "--", "true"]);
    await until(async () => JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])).length === 0, 5000, "--rm removal");
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
  }, 60000);

  test("after a reboot `burrow start` (the generated unit's ExecStart) re-creates the sandbox; generate systemd prints that unit", async () => {
    const port = hostPort();
    const dir = webDir(t, "boot");
    await t.burrowOk(["run", "-d", "--name", "boot", "--restart", "always", "-p", `${port}:8080`, "--", ...httpd(dir)]);
    expect(await until(() => fetchFromHost(t, port), 10000, "first serve")).toBe("boot\n");
    const unit = await t.burrowOk(["generate", "systemd", "boot"]);
    const bin = burrowBin();
    expect(unit).toContain("[Unit]");
    expect(unit).toContain(`ExecStart=${bin} start boot\n`);
    expect(unit).toContain(`ExecStop=${bin} stop -t 10 boot\n`);
    expect(unit).toContain("Restart=on-failure\n");
    expect(unit).toContain(`Environment=BURROW_STATE_DIR=${t.dirs.stateDir}\n`);
    expect(unit).toContain("WantedBy=default.target");
    if (Bun.which("systemd-analyze")) {
      // systemd's own reading of the unit (no manager needed, nothing installed)
      const file = `${t.dirs.root}/burrow-boot.service`;
      writeFileSync(file, unit);
      const v = Bun.spawnSync(["systemd-analyze", "verify", file], { stderr: "pipe", stdout: "pipe" });
      expect(v.stderr.toString()).toBe("");
      expect(v.exitCode).toBe(0);
    } else console.warn("systemd-analyze not installed: the generated unit is not checked by systemd (apt-get install systemd)");
    const json = JSON.parse(await t.burrowOk(["generate", "systemd", "--format", "json", "boot"]));
    expect(json["burrow-boot.service"]).toBe(unit);
    expect((await t.burrow(["generate", "systemd", "nosuch"])).code).toBe(125);

    // A reboot: every process ends, and the boot id changes. The holder
    // first stopped, so that its supervisor cannot restart the daemon
    // before the state says "another boot" (as in lifecycle.test.ts).
    const pid = (await inspect(t, "boot")).State.Pid as number;
    const holder = JSON.parse(readFileSync(`${t.dirs.runtimeDir}/holder.json`, "utf8")).pid as number;
    process.kill(holder, "SIGSTOP");
    for (const d of daemonPids(t.dirs.runtimeDir)) process.kill(d, "SIGKILL");
    process.kill(holder, "SIGKILL");
    process.kill(pid, "SIGKILL");
    for (const h of procsWith(t.dirs.runtimeDir, (argv) => argv[0]!.endsWith("slirp4netns"))) process.kill(h, "SIGKILL");
    await until(() => daemonPids(t.dirs.runtimeDir).length === 0, 5000, "daemon gone");
    const db = new Database(`${t.dirs.stateDir}/state.db`);
    db.run("UPDATE sandboxes SET boot_id = 'an-earlier-boot'");
    db.close();
    // What the unit runs at boot:
    expect(await t.burrowOk(["start", "boot"])).toBe("boot\n");
    expect(await until(() => fetchFromHost(t, port), 10000, "serve after start")).toBe("boot\n");
    const s = await inspect(t, "boot");
    expect(s.State.Running).toBe(true);
    expect(s.HostConfig.RestartPolicy.Name).toBe("always");
    await t.burrowOk(["rm", "-f", "boot"]);
  }, 60000);
});

for (const mode of ["rootful", "rootless"] as const)
  describe.skipIf(!!why)(`restart (${mode} bridge)`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("restart keeps the IP and MAC on a bridge network and the port serves again", async () => {
      const port = hostPort();
      const dir = webDir(t, "br");
      await t.burrowOk(["network", "create", "--subnet", "10.89.61.0/24", "rnet"], { env: { BURROW_LOG: "debug" } });
      await t.burrowOk(["run", "-d", "--name", "br", "--network", "rnet", "-p", `${port}:8080`, "--", ...httpd(dir)]);
      expect(await until(() => fetchFromHost(t, port), 10000, "first serve")).toBe("br\n");
      const before = await inspect(t, "br");
      const n0 = before.NetworkSettings.Networks.rnet;
      expect(n0.IPAddress).toMatch(/^10\.89\.61\.\d+$/);
      const out = await t.burrowOk(["restart", "-t", "2", "br"], { env: { BURROW_LOG: "debug" } });
      expect(out.trim()).toBe(before.Id);
      const after = await inspect(t, "br");
      if (after.NetworkSettings.Networks.rnet.IPAddress !== n0.IPAddress)
        console.error(
          readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8"),
          "sandbox log:",
          readFileSync(`${t.dirs.runtimeDir}/sandboxes/${before.Id}/log`, "utf8"),
        );
      expect(after.State.Running).toBe(true);
      expect(after.State.Pid).not.toBe(before.State.Pid);
      expect(after.NetworkSettings.Networks.rnet.IPAddress).toBe(n0.IPAddress);
      expect(after.NetworkSettings.Networks.rnet.MacAddress).toBe(n0.MacAddress);
      expect(after.RestartCount).toBe(0);
      expect(await until(() => fetchFromHost(t, port), 10000, "serve after restart")).toBe("br\n");
      await t.burrowOk(["rm", "-f", "br"]);
      await t.burrowOk(["network", "rm", "rnet"]);
    }, 60000);
  });
