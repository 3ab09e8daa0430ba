// pasta run the way podman 5/6 runs it, and the rootless default chosen by
// what is installed (issue 15 items 1 and 2): dist/burrow as the test user
// with the real pasta, reading pasta's command line from /proc. Debian 12's
// 2023 pasta here; the sid tier's 2026 pasta (--map-guest-addr) at the end.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { describeWhen, firstMissing, missingTools } from "../helpers/requirements.ts";
import { prepareSidRoot, sidRun, sidTierChecks } from "../helpers/sid.ts";
import { until } from "../helpers/until.ts";

const why = firstMissing(integrationUnavailable(), () => missingTools(["pasta", "slirp4netns"]));
if (why) console.warn(`skipping the pasta (podman's way) tests: ${why}`);

let nextPort = 29000 + Math.floor(Math.random() * 1000);
const hostPort = () => nextPort++;

/** The argv of the live pasta serving sandbox `id` (its --netns names the sandbox's pin). */
function pastaArgv(id: string): { pid: number; argv: string[] } | null {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
      if (!/^(pasta|passt)/.test(comm)) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").slice(0, -1);
      if (argv.some((a) => a.includes(`/pins/${id}/`))) return { pid: Number(entry), argv };
    } catch {}
  }
  return null;
}

const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\S+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
};

describeWhen(why)("pasta as podman 5 runs it (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(() => t.dispose());

  /** A containers.conf of the test's own (CONTAINERS_CONF: the only file read). */
  function conf(text: string): Record<string, string> {
    const file = `${t.dirs.root}/containers.conf`;
    writeFileSync(file, text);
    chmodSync(file, 0o644);
    return { CONTAINERS_CONF: file };
  }

  test("the command line: --config-net, containers.conf pasta_options, the user's, ports, --dns-forward, nones, --no-map-gw, --quiet, --netns", async () => {
    const env = conf('[network]\npasta_options = ["--mtu", "1400"]\n');
    const port = hostPort();
    const r = await t.burrow(["run", "-d", "--network", "pasta:-T,9999", "-p", `127.0.0.1:${port}:80`, "--", "sleep", "600"], { env });
    expect(r.stderr).toBe(""); // nothing alarming from pasta or burrow
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    const p = pastaArgv(id);
    expect(p).not.toBeNull();
    const a = p!.argv.slice(1);
    expect(a.slice(0, 7)).toEqual(["--config-net", "--mtu", "1400", "--tcp-ns", "9999", "--tcp-ports", `127.0.0.1/${port}:80`]);
    const at = (...seq: string[]) => a.findIndex((_, i) => seq.every((s, j) => a[i + j] === s));
    const order = [
      at("--dns-forward", "169.254.1.1"),
      at("--udp-ports", "none"),
      at("--udp-ns", "none"),
      at("--no-map-gw"),
      at("--quiet"),
      at("--netns", `${t.dirs.runtimeDir}/pins/${id}/net`),
    ];
    expect(order.every((i) => i > 6)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    // Set by the user: no "none" for it. Debian 12's pasta has no --map-guest-addr: --netns is last.
    expect(at("--tcp-ns", "none")).toBe(-1);
    expect(a.slice(-2)).toEqual(["--netns", `${t.dirs.runtimeDir}/pins/${id}/net`]);
    // pasta's log holds its version line and nothing alarming.
    const log = readFileSync(`${t.dirs.runtimeDir}/sandboxes/${id}/pasta.log`, "utf8");
    expect(log.split("\n").filter((l) => /warn|error|fail|couldn't|cannot|unknown option/i.test(l))).toEqual([]);
    await t.burrowOk(["rm", "-f", id], { env });
  });

  test("--map-gw (podman's switch) leaves --no-map-gw out; --dns-forward given is not doubled", async () => {
    const id = (await t.burrowOk(["run", "-d", "--network", "pasta:--map-gw,--dns-forward,169.254.9.9", "--", "sleep", "600"])).trim();
    const a = pastaArgv(id)!.argv;
    expect(a).not.toContain("--no-map-gw");
    expect(a.filter((x) => x === "--dns-forward")).toHaveLength(1);
    expect(a[a.indexOf("--dns-forward") + 1]).toBe("169.254.9.9");
    await t.burrowOk(["rm", "-f", id]);
  });

  test("a user's --pid FILE: pasta's pid is written there, and pasta ends when the sandbox ends", async () => {
    const pidFile = `${t.dirs.root}/mine.pid`;
    mkdirSync(t.dirs.root, { recursive: true });
    const gate = `${t.dirs.root}/gate`;
    const id = (await t.burrowOk(["run", "-d", "--network", `pasta:--pid,${pidFile}`, "--", "sh", "-c", `until [ -e ${gate} ]; do sleep 0.05; done`])).trim();
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    const p = pastaArgv(id)!;
    expect(p.pid).toBe(pid);
    expect(p.argv.filter((x) => x === "--pid")).toHaveLength(1);
    expect(p.argv[p.argv.indexOf("--pid") + 1]).toBe(pidFile);
    // burrow tracks that pid: inspect's state and the helper ledger see pasta.
    expect(alive(pid)).toBe(true);
    writeFileSync(gate, "");
    await until(async () => (await t.burrowOk(["ps", "-a", "--format", "{{.Status}}"])).startsWith("Exited"), 10_000, "the sandbox to exit");
    await until(() => !alive(pid), 10_000, `pasta ${pid} to end with its sandbox`);
    await t.burrowOk(["rm", id]);
  });

  test("a relative --pid is refused in one line, leaving nothing", async () => {
    const rel = await t.burrow(["run", "--rm", "--network", "pasta:--pid,x.pid", "--", "true"]);
    expect(rel.code).toBe(125);
    expect(rel.stderr.trim()).toBe('Error: invalid pasta option --pid="x.pid": accepted values are absolute file paths');
    expect(await t.burrowOk(["ps", "-aq"])).toBe("");
  });

  // containers.conf is read once per daemon, as podman reads it once per
  // command: each file below is in place before this context's first command.
  test("a bad containers.conf pasta_options is refused in one line, naming the file's setting", async () => {
    const env = conf('[network]\npasta_options = ["--netns", "/tmp/x"]\n');
    const bad = await t.burrow(["run", "--rm", "--network", "pasta", "--", "true"], { env });
    expect(bad.code).toBe(125);
    expect(bad.stderr.trim()).toBe("Error: containers.conf pasta_options: pasta option --netns cannot be given: burrow passes the sandbox's namespace");
    expect(await t.burrowOk(["ps", "-aq"], { env })).toBe("");
  });

  const hosts = async (env?: Record<string, string>) =>
    (await t.burrowOk(["run", "--rm", "--network", "pasta", "--", "cat", "/etc/hosts"], { env }))
      .split("\n")
      .filter((l) => l.endsWith("host.containers.internal"));

  test("host.containers.internal without containers.conf: the host's first address (Debian 12's pasta maps no guest address)", async () => {
    const [plain] = await hosts();
    expect(plain).toMatch(/^\d+\.\d+\.\d+\.\d+\thost.containers.internal$/);
    expect(plain).not.toMatch(/^(127|169\.254)\./);
  });

  test("host.containers.internal from containers.conf host_containers_internal_ip", async () => {
    expect(await hosts(conf('[containers]\nhost_containers_internal_ip = "192.0.2.77"\n'))).toEqual(["192.0.2.77\thost.containers.internal"]);
  });

  test("host_containers_internal_ip = none leaves the entry out", async () => {
    expect(await hosts(conf('[containers]\nhost_containers_internal_ip = "none"\n'))).toEqual([]);
  });

  test("a bad host_containers_internal_ip is refused in one line", async () => {
    const bad = await t.burrow(["run", "--rm", "--network", "pasta", "--", "true"], { env: conf('[containers]\nhost_containers_internal_ip = "gateway"\n') });
    expect(bad.code).toBe(125);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain('accepted values are an IPv4 or IPv6 address, or "none" for no entry');
  });
});

describeWhen(why)("the rootless default: chosen, and what is installed (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(() => t.dispose());

  /** A PATH holding everything /usr/bin has but `missing` (Debian's /bin is /usr/bin). */
  function pathWithout(missing: string): string {
    const dir = `${t.dirs.root}/bin-without-${missing}`;
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync("/usr/bin")) if (name !== missing) symlinkSync(`/usr/bin/${name}`, `${dir}/${name}`);
    return dir;
  }
  /** The interface names a plain `run` sees: slirp4netns makes tap0, pasta copies the host's. */
  const links = async (env?: Record<string, string>) =>
    (await t.burrowOk(["run", "--rm", "--", "ip", "-o", "link"], { env })).match(/^\d+: (\S+?)[:@]/gm) ?? [];

  test("without containers.conf: slirp4netns (the measured default), and info says why", async () => {
    expect((await links()).join(" ")).toContain("tap0");
    const info = JSON.parse(await t.burrowOk(["info", "--format", "json"]));
    expect(info.Network.Backend).toBe("slirp4netns");
    expect(info.Network.Why).toContain("measured ahead of pasta");
  });

  test("containers.conf default_rootless_network_cmd = pasta: a plain run uses pasta", async () => {
    const file = `${t.dirs.root}/containers.conf`;
    writeFileSync(file, '[network]\ndefault_rootless_network_cmd = "pasta"\n');
    chmodSync(file, 0o644);
    const env = { CONTAINERS_CONF: file };
    expect((await links(env)).join(" ")).not.toContain("tap0");
    const id = (await t.burrowOk(["run", "-d", "--", "sleep", "600"], { env })).trim();
    expect(pastaArgv(id)).not.toBeNull();
    await t.burrowOk(["rm", "-f", id], { env });
    const info = JSON.parse(await t.burrowOk(["info", "--format", "json"], { env }));
    expect(info.Network).toMatchObject({ Backend: "pasta", Why: expect.stringContaining('default_rootless_network_cmd = "pasta"') });
  });

  test("slirp4netns not installed, pasta is: a plain run uses pasta, and info and doctor say so once", async () => {
    const env = { PATH: pathWithout("slirp4netns") };
    const run = await t.burrow(["run", "--rm", "--", "ip", "-o", "link"], { env });
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    expect(run.stdout).not.toContain("tap0");
    const info = JSON.parse(await t.burrowOk(["info", "--format", "json"], { env }));
    expect(info.Network.Backend).toBe("pasta");
    expect(info.Network.Why).toContain("slirp4netns is not installed");
    const doctor = await t.burrow(["doctor"], { env });
    expect(doctor.stdout.match(/slirp4netns is not installed/g)).toHaveLength(1);
  });

  test("pasta the configured default but not installed: slirp4netns is used", async () => {
    const file = `${t.dirs.root}/containers.conf`;
    writeFileSync(file, '[network]\ndefault_rootless_network_cmd = "pasta"\n');
    chmodSync(file, 0o644);
    const env = { CONTAINERS_CONF: file, PATH: pathWithout("pasta") };
    expect((await links(env)).join(" ")).toContain("tap0");
    const info = JSON.parse(await t.burrowOk(["info", "--format", "json"], { env }));
    expect(info.Network.Backend).toBe("slirp4netns");
    expect(info.Network.Why).toContain("pasta is not installed");
  });
});

const unavailable = integrationUnavailable();
const archiveUnreachable = unavailable ? null : await prepareSidRoot();
if (archiveUnreachable) console.warn(`skipping the sid tier's pasta: ${archiveUnreachable}`);
const sidTier = archiveUnreachable ? describe.skip : describeWhen(unavailable);

sidTier("pasta 2026 in the sid tier", () => {
  sidTierChecks();

  test("--map-guest-addr 169.254.1.2 comes last, and host.containers.internal is that address, which reaches the host", async () => {
    const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = s.port;
    s.stop(true);
    // The sid root has no /etc/hosts to bind over: the sandbox's file is read in burrow's runtime dir.
    const script = `export HOME="$(mktemp -d)" && cd "$HOME"
mkdir www && echo "hello host" > www/index.html
busybox httpd -f -p 0.0.0.0:${port} -h "$HOME/www" & httpd=$!
id=$(burrow run -d --network pasta -- sleep 600)
# Processes may end between pgrep and the read (another command's): their reads are allowed to fail.
# A zombie has an empty cmdline: pasta's parent, which forks into the background, until the daemon reaps it.
for p in $(pgrep -u "$(id -u)"); do case $(cat /proc/$p/comm 2>/dev/null) in pasta*|passt*) c=$(tr '\\0' ' ' 2>/dev/null </proc/$p/cmdline || true); if [ -n "$c" ]; then echo "$c"; fi;; esac; done
dir="\${BURROW_RUNTIME_DIR:-$XDG_RUNTIME_DIR/burrow}/sandboxes/$id"
grep host.containers.internal "$dir/hosts"
burrow exec "$id" busybox wget -q -T 5 -O - "http://169.254.1.2:${port}/"
grep -ciE "warn|error|fail|cannot|couldn't" "$dir/pasta.log" || true
burrow rm -f "$id" >/dev/null
kill $httpd; wait $httpd 2>/dev/null || true`;
    const r = await sidRun(["sh", "-ec", script]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [cmdline, hostsLine, body, alarming] = r.stdout.trim().split("\n");
    expect(cmdline!.trim()).toEndWith("--map-guest-addr 169.254.1.2");
    expect(cmdline).toContain("--quiet --netns ");
    expect(hostsLine).toBe("169.254.1.2\thost.containers.internal");
    expect(body).toBe("hello host");
    expect(alarming).toBe("0"); // pasta's log: nothing alarming
  }, 60_000);
});
