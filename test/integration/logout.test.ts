// What a logout's `rm -rf $XDG_RUNTIME_DIR/burrow` must not take from running
// sandboxes (issue 10, "logout simulation"), beyond ownership.test.ts's pins,
// socket and holder: their logs, the bridge networks' DNS names, the
// slirp4netns API sockets of port_handler=slirp4netns; and dnsname's dnsmasq
// accounted for through a daemon crash. dist/burrow as the test user (and
// rootful in a test netns where said); every test ends with the leak check.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, testUser } from "../helpers/env.ts";
import { procEnv } from "../helpers/leaks.ts";
import { listPids } from "../helpers/netns.ts";
import { eventually } from "../helpers/until.ts";
import { argvOf } from "../helpers/sys.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping logout tests: ${why}`);

const until = (cond: () => boolean | Promise<boolean>, ms = 10000) => eventually(cond, ms);

/** Not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** This context's dnsmasq processes (its dirs on their command line, or its test tag). */
function dnsmasqPids(t: BurrowContext): number[] {
  return listPids().filter((pid) => {
    const argv = argvOf(pid);
    return (argv[0] ?? "").endsWith("dnsmasq") && alive(pid) && (argv.some((a) => a.includes(t.dirs.root)) || procEnv(pid).tag === t.tag);
  });
}

/** This context's slirp4netns processes. */
function slirpPids(t: BurrowContext): number[] {
  return listPids().filter((pid) => (argvOf(pid)[0] ?? "").endsWith("slirp4netns") && alive(pid) && procEnv(pid).tag === t.tag);
}

/** What the daemon wrote to its log, also after a logout unlinked the file (its stderr). */
function daemonLog(t: BurrowContext): string {
  return daemonPids(t)
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/fd/2`, "utf8");
      } catch {
        return "";
      }
    })
    .join("");
}

/** A file the test user can create and the test can see: the sandbox's command waits for it. */
function triggerPath(t: BurrowContext, name: string): string {
  return `${t.dirs.root}/trigger-${name}`;
}

/** A directory the test user's busybox httpd serves, holding index.html = `text`; and a GET of it on 127.0.0.1:`port` (null when nothing answers). */
function webRoot(t: BurrowContext, text: string): string {
  const dir = `${t.dirs.root}/www`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/index.html`, text);
  chownSync(dir, testUser().uid, testUser().gid);
  chownSync(`${dir}/index.html`, testUser().uid, testUser().gid);
  return dir;
}
async function getLocal(port: number): Promise<string | null> {
  try {
    return await (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) })).text();
  } catch {
    return null;
  }
}

/**
 * Waits (up to 5 s) for `getent hosts NAME` in sandbox `from` to answer
 * `want`; returns what the last try printed, so a failure shows it.
 */
async function resolvesTo(t: BurrowContext, from: string, name: string, want: string): Promise<string> {
  let last = "";
  await until(async () => {
    const r = await t.burrow(["exec", from, "--", "getent", "hosts", name]);
    last = r.stdout.split(/\s+/)[0] || `(exit ${r.code}: ${r.stderr.trim()})`;
    return last === want;
  }, 5000);
  return last;
}

/**
 * Runs `body`; when it fails, prints the daemon's log (the one a logout
 * unlinked, then the one it writes since) and the context's DNS helpers first (a flake here is only explainable with them).
 */
async function explained(t: BurrowContext, helpers: () => number[], body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    const procs = helpers().map((pid) => `${pid}: ${argvOf(pid).join(" ")}`);
    let after = "";
    try {
      after = readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8");
    } catch {}
    console.error(`daemon log:\n${daemonLog(t)}${after}\nDNS helpers now:\n${procs.join("\n") || "(none)"}`);
    throw e;
  }
}

/**
 * `network create NET`, then sandboxes a and b on it (running `sleep
 * SECONDS`); their addresses, and how to read another one's.
 */
async function pairOn(t: BurrowContext, net: string, seconds: string): Promise<{ ip: (name: string) => Promise<string>; ipA: string; ipB: string }> {
  await t.burrowOk(["network", "create", net]);
  await Promise.all(["a", "b"].map((n) => t.burrowOk(["run", "-d", "--network", net, "--name", n, "--", "sleep", seconds])));
  const ip = async (n: string) => JSON.parse(await t.burrowOk(["inspect", n]))[0].NetworkSettings.Networks[net].IPAddress as string;
  return { ip, ipA: await ip("a"), ipB: await ip("b") };
}

/** rm -f of a, b and c, network rm NET, and no DNS helper of it left (within 5 s). */
async function removeTrio(t: BurrowContext, net: string, helpers: () => number[]): Promise<void> {
  await t.burrowOk(["rm", "-f", "a", "b", "c"]);
  await t.burrowOk(["network", "rm", net]);
  expect(await until(() => helpers().length === 0, 5000)).toBe(true);
}

const logout = (t: BurrowContext) => rmSync(t.dirs.runtimeDir, { recursive: true, force: true }); // what systemd-logind does

describe.skipIf(!!why)("logout (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("logs survive a logout: output from before and after the rm -rf, with -d and -d -t; rm removes them", async () => {
    const script = (name: string) => `echo before-${name}; while [ ! -e ${triggerPath(t, name)} ]; do sleep 0.1; done; echo after-${name}; exec sleep 3031`;
    const plain = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "plain", "--", "sh", "-c", script("plain")])).trim();
    await t.burrowOk(["run", "-d", "-t", "--network", "none", "--name", "tty", "--", "sh", "-c", script("tty")]);
    expect(await until(async () => (await t.burrowOk(["logs", "plain"])).includes("before-plain"))).toBe(true);
    expect(await until(async () => (await t.burrowOk(["logs", "tty"])).includes("before-tty"))).toBe(true);

    logout(t);

    // what was written before the logout is still shown
    expect(await t.burrowOk(["logs", "plain"])).toBe("before-plain\n");
    expect(await t.burrowOk(["logs", "tty"])).toBe("before-tty\r\n");
    // and what is written after it
    writeFileSync(triggerPath(t, "plain"), "");
    writeFileSync(triggerPath(t, "tty"), "");
    expect(await until(async () => (await t.burrowOk(["logs", "plain"])) === "before-plain\nafter-plain\n")).toBe(true);
    expect(await until(async () => (await t.burrowOk(["logs", "tty"])) === "before-tty\r\nafter-tty\r\n")).toBe(true);
    // a log is the user's file, never in the runtime dir a logout removes
    expect(readFileSync(`${t.dirs.stateDir}/sandboxes/${plain}/ctr.log`, "utf8")).toMatch(/ stdout F before-plain\n.* stdout F after-plain\n$/);
    expect(existsSync(`${t.dirs.runtimeDir}/sandboxes/${plain}/ctr.log`)).toBe(false);
    // a stopped sandbox keeps its log; rm removes it
    await t.burrowOk(["stop", "-t", "1", "plain"]);
    expect(await t.burrowOk(["logs", "plain"])).toBe("before-plain\nafter-plain\n");
    await t.burrowOk(["rm", "-f", "plain", "tty"]);
    expect(readdirSync(`${t.dirs.stateDir}/sandboxes`)).toEqual([]);
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
  }, 60000);

  test("a log file that is a symbolic link is refused, not followed", async () => {
    const id = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "linked", "--", "sh", "-c", "echo hi; exec sleep 3032"])).trim();
    expect(await until(async () => (await t.burrowOk(["logs", "linked"])) === "hi\n")).toBe(true);
    const log = `${t.dirs.stateDir}/sandboxes/${id}/ctr.log`;
    rmSync(log);
    symlinkSync("/etc/shadow", log);
    const r = await t.burrow(["logs", "linked"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`refusing to use ${log}: it is a symbolic link`);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    await t.burrowOk(["rm", "-f", "linked"]);
    expect(existsSync(`${t.dirs.stateDir}/sandboxes/${id}`)).toBe(false);
  }, 30000);

  test("bridge DNS names survive a logout: older sandboxes resolve each other and a new one, and it them", async () => {
    await explained(
      t,
      () => dnsmasqPids(t),
      async () => {
        const { ip, ipA, ipB } = await pairOn(t, "dnet", "3033");
        expect(await resolvesTo(t, "a", "b", ipB)).toBe(ipB);
        expect(dnsmasqPids(t)).toHaveLength(1);

        logout(t);

        expect(await resolvesTo(t, "a", "b", ipB)).toBe(ipB);
        expect(await resolvesTo(t, "b", "a.dns.burrow", ipA)).toBe(ipA);
        await t.burrowOk(["run", "-d", "--network", "dnet", "--name", "c", "--", "sleep", "3033"]);
        const ipC = await ip("c");
        expect(await resolvesTo(t, "a", "c", ipC)).toBe(ipC);
        expect(await resolvesTo(t, "c", "a", ipA)).toBe(ipA);
        expect(await resolvesTo(t, "c", "b", ipB)).toBe(ipB);
        // One dnsmasq, never two for one network. (Here the state dir is under
        // /run, which the old plugin runner's mount namespace lost with the
        // runtime dir, so it was replaced; with ~/.local/share it is the same one.)
        expect(dnsmasqPids(t)).toHaveLength(1);
        await removeTrio(t, "dnet", () => dnsmasqPids(t));
      },
    );
  }, 60000);

  test("a logout while nothing runs inside the rootless namespace (its dnsmasq killed): the daemon's handle keeps it, it is pinned again and a dnsmasq serves the names", async () => {
    await explained(
      t,
      () => dnsmasqPids(t),
      async () => {
        const { ipA, ipB } = await pairOn(t, "knet", "3034");
        expect(await resolvesTo(t, "a", "b", ipB)).toBe(ipB);
        // The one process inside (slirp4netns holds no handle on it): what a
        // check that ran during the rm -rf left when its dnsmasq failed to start.
        const [dnsmasq] = dnsmasqPids(t);
        process.kill(dnsmasq!, "SIGKILL");
        expect(await until(() => dnsmasqPids(t).length === 0, 5000)).toBe(true);

        logout(t);

        expect(await resolvesTo(t, "a", "b", ipB)).toBe(ipB);
        expect(await resolvesTo(t, "b", "a", ipA)).toBe(ipA);
        await t.burrowOk(["run", "-d", "--network", "knet", "--name", "c", "--", "sleep", "3034"]);
        expect(await resolvesTo(t, "c", "a", ipA)).toBe(ipA);
        expect(dnsmasqPids(t)).toHaveLength(1);
        await removeTrio(t, "knet", () => dnsmasqPids(t));
      },
    );
  }, 60000);

  test("netavark networks after a logout: names resolve both ways, a new sandbox joins, one aardvark-dns, nothing left after rm", async () => {
    await t.dispose();
    t = await burrowContext("rootless", { networkBackend: "netavark" });
    const aardvark = () =>
      listPids().filter((pid) => (argvOf(pid)[0] ?? "").endsWith("aardvark-dns") && alive(pid) && argvOf(pid).some((a) => a.includes(t.dirs.root)));
    await explained(t, aardvark, async () => {
      const { ip, ipA, ipB } = await pairOn(t, "nnet", "3036");
      expect(await resolvesTo(t, "a", "b", ipB)).toBe(ipB);
      expect(aardvark()).toHaveLength(1);

      logout(t);

      expect(await resolvesTo(t, "b", "a.dns.podman", ipA)).toBe(ipA);
      await t.burrowOk(["run", "-d", "--network", "nnet", "--name", "c", "--", "sleep", "3036"]);
      const ipC = await ip("c");
      expect([ipA, ipB]).not.toContain(ipC);
      expect(await resolvesTo(t, "a", "c", ipC)).toBe(ipC);
      expect(await resolvesTo(t, "c", "b", ipB)).toBe(ipB);
      expect(aardvark()).toHaveLength(1);
      await removeTrio(t, "nnet", aardvark);
    });
  }, 60000);

  test("port_handler=slirp4netns after a logout: the port answers, a slirp4netns restart publishes it again, rm -f leaves nothing", async () => {
    // Below the ephemeral range (32768+) and apart from the other files' ranges.
    const port = 31000 + Math.floor(Math.random() * 1700);
    const dir = webRoot(t, "api\n");
    const get = () => getLocal(port);
    const mode = "slirp4netns:port_handler=slirp4netns";
    const httpd = ["busybox", "httpd", "-f", "-p", "80", "-h", dir];
    await t.burrowOk(["run", "-d", "--name", "api", "--restart", "on-failure", "--network", mode, "-p", `127.0.0.1:${port}:80`, "--", ...httpd]);
    await t.burrowOk(["run", "-d", "--name", "api2", "--network", mode, "-p", `127.0.0.1:${port + 1}:80`, "--", ...httpd]);
    expect(await until(async () => (await get()) === "api\n")).toBe(true);
    expect(slirpPids(t)).toHaveLength(2);

    logout(t);

    // The forwards live in slirp4netns, not in its API socket: the port answers.
    expect(await get()).toBe("api\n");
    // slirp4netns dies, then the command: the restart starts a new slirp4netns
    // (and API socket) and publishes the port through it again.
    const inspect = async (n: string) => JSON.parse(await t.burrowOk(["inspect", n]))[0];
    const api = await inspect("api");
    const cmd = api.State.Pid as number;
    const socket = `--api-socket\0${t.dirs.runtimeDir}/api/${(api.Id as string).slice(0, 16)}.sock`;
    const apiSlirp = slirpPids(t).find((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(socket));
    expect(apiSlirp).toBeGreaterThan(0);
    process.kill(apiSlirp!, "SIGKILL");
    process.kill(cmd, "SIGKILL");
    expect(await until(async () => (await get()) === "api\n", 15000)).toBe(true);
    expect(await until(() => slirpPids(t).length === 2 && !slirpPids(t).includes(apiSlirp!), 5000)).toBe(true);
    // rm -f of the one whose API socket the logout took: no error, nothing left
    const rm = await t.burrow(["rm", "-f", "api2"]);
    expect(rm).toMatchObject({ code: 0, stderr: "" });
    await t.burrowOk(["rm", "-f", "api"]);
    expect(await get()).toBeNull();
    expect(await until(() => slirpPids(t).length === 0, 5000)).toBe(true);
    expect(daemonLog(t)).not.toContain("remove_hostfwd");
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
  }, 60000);
});

describe.skipIf(!!why)("logout with pasta (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  /** This context's pasta processes. */
  const pastaPids = () => listPids().filter((pid) => (argvOf(pid)[0] ?? "").endsWith("pasta") && alive(pid) && procEnv(pid).tag === t.tag);

  test("a sandbox's own pasta outlives a logout: its port still answers; rm -f stops that pasta", async () => {
    const port = 32700 + Math.floor(Math.random() * 60);
    const dir = webRoot(t, "pasta\n");
    const get = () => getLocal(port);
    await t.burrowOk(["run", "-d", "--name", "web", "--network", "pasta", "-p", `127.0.0.1:${port}:80`, "--", "busybox", "httpd", "-f", "-p", "80", "-h", dir]);
    expect(await until(async () => (await get()) === "pasta\n")).toBe(true);
    const [pasta] = pastaPids();
    expect(pasta).toBeGreaterThan(0);

    logout(t);

    // pasta used to quit when the pin went: the port would stop answering within its inotify wake-up.
    await Bun.sleep(500);
    expect(alive(pasta!)).toBe(true);
    expect(await get()).toBe("pasta\n");
    await t.burrowOk(["rm", "-f", "web"]);
    expect(await until(() => !alive(pasta!), 5000)).toBe(true);
    expect(await get()).toBeNull();
  }, 60000);
});

describe.skipIf(!!why)("logout and a daemon crash (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("a logout, then kill -9 of the daemon before it rebuilt anything: after rm -fa and network rm no dnsmasq is left", async () => {
    await t.burrowOk(["network", "create", "ldns"]);
    await t.burrowOk(["run", "-d", "--network", "ldns", "--name", "a", "--", "sleep", "3035"]);
    expect(dnsmasqPids(t)).toHaveLength(1);
    const [daemon] = daemonPids(t);
    logout(t);
    // The next daemon (the holder restarts it) never knew the rootless CNI namespace.
    process.kill(daemon!, "SIGKILL");
    const rm = await t.burrow(["rm", "-fa"]);
    // All of it in one value: a failure shows what rm said, and what the daemon saw.
    const seen = rm.stdout.trim().length === 64 ? "" : `${(await t.burrow(["events", "--format", "json"])).stdout}\n${daemonLog(t)}`;
    expect({ code: rm.code, removed: rm.stdout.trim().length, stderr: rm.stderr, seen }).toEqual({ code: 0, removed: 64, stderr: "", seen: "" });
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    await t.burrowOk(["network", "rm", "ldns"]);
    expect(await until(() => dnsmasqPids(t).length === 0, 5000)).toBe(true);
    expect(await until(() => slirpPids(t).length === 0, 5000)).toBe(true);
  }, 60000);
});

/**
 * A CNI plugin dir like the machine's, whose dnsname pauses after an ADD
 * while `hold` exists: dnsmasq is up, the daemon has not recorded the ADD.
 */
function slowDnsnamePlugins(t: BurrowContext): { conf: string; hold: string; remove(): void } {
  // Not under the runtime dirs (/run): the rootless plugin runner has its own /run.
  const dir = `${testUser().tmpdir}/cni-plugins-${t.tag.replace(/\W/g, "-")}`;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const real = ["/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin"].find((d) => existsSync(`${d}/dnsname`));
  if (!real) throw new Error("the dnsname CNI plugin is not installed (scripts/setup.sh installs it)");
  for (const p of readdirSync(real)) if (p !== "dnsname") symlinkSync(`${real}/${p}`, `${dir}/${p}`);
  const hold = `${dir}/hold`;
  writeFileSync(
    `${dir}/dnsname`,
    `#!/bin/sh\n${real}/dnsname "$@"\nrc=$?\nif [ "$CNI_COMMAND" = ADD ]; then while [ -e ${hold} ]; do sleep 0.1; done; fi\nexit $rc\n`,
  );
  chmodSync(`${dir}/dnsname`, 0o755);
  const conf = `${t.dirs.root}/containers.conf`;
  writeFileSync(conf, `[network]\ncni_plugin_dirs = ["${dir}"]\n`);
  for (const f of [dir, conf, `${dir}/dnsname`]) chownSync(f, testUser().uid, testUser().gid);
  return { conf, hold, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

for (const mode of ["rootless", "rootful"] as const) {
  describe.skipIf(!!why)(`dnsmasq through a daemon crash (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    const cleanups: (() => void)[] = [];
    afterEach(async () => {
      try {
        await t.dispose();
      } finally {
        for (const c of cleanups.splice(0)) c();
      }
    });

    test("kill -9 of the daemon (and the CLI) while dnsname has started dnsmasq: after rm -fa and network rm no dnsmasq is left", async () => {
      const plugins = slowDnsnamePlugins(t);
      const { conf, hold } = plugins;
      const env = { CONTAINERS_CONF: conf };
      cleanups.push(plugins.remove);
      await t.burrowOk(["network", "create", "crashdns"], { env });
      writeFileSync(hold, "");
      // The first create's ADD pauses in dnsname once dnsmasq is up; two more wait behind it.
      const first = t.spawnBurrow(["run", "-d", "--network", "crashdns", "--name", "d0", "--", "sleep", "3034"], { env });
      expect(await until(() => dnsmasqPids(t).length === 1, 20000)).toBe(true);
      const others = ["d1", "d2"].map((n) => t.burrow(["run", "-d", "--network", "crashdns", "--name", n, "--", "sleep", "3034"], { env, timeoutMs: 60_000 }));
      await Bun.sleep(300);
      const [daemon] = daemonPids(t);
      expect(daemon).toBeGreaterThan(0);
      // The daemon dies mid-ADD, and so does the CLI that asked: nobody
      // retries that create, whose dnsname entry is already written.
      process.kill(daemon!, "SIGKILL");
      first.kill("SIGKILL");
      rmSync(hold);
      const results = await Promise.all(others);
      for (const r of results) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      const gone = await until(async () => (await t.burrowOk(["ps", "-a", "--format", "json"], { env })).includes('"d0"') === false);
      expect(gone).toBe(true);
      await t.burrowOk(["rm", "-fa"], { env });
      await t.burrowOk(["network", "rm", "crashdns"], { env });
      expect(await until(() => dnsmasqPids(t).length === 0, 5000)).toBe(true);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"], { env }))).toEqual([]);
    }, 90000);
  });
}
