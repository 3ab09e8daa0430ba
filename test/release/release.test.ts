// The release tier: `bun run release` once, then every install route on this
// machine, as a user made here with plain `useradd -m` and nothing else set
// up (issue 8): the files and SHA256SUMS, lintian, the apt route, the npm
// route, arm64 under qemu-user, helper discovery on a Fedora-style layout,
// and the upgrade from 0.1.0's state. Runs as root (CI does). Leaves the
// machine as it found it: package removed, user removed, files gone.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { releaseFiles } from "../../scripts/release.ts";
import { debVersion } from "../../scripts/packaging/deb.ts";
import { installedBin, repoRoot, USER_PATH } from "../helpers/env.ts";

const pkgVersion: string = JSON.parse(readFileSync(`${repoRoot}/package.json`, "utf8")).version;
const out = `${repoRoot}/dist/release`;
const deb = (arch: string) => `${out}/burrow_${pkgVersion}_${arch}.deb`;
const OLD_COMMIT = "8c25150"; // burrow 0.1.0

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(argv: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; stdin?: string } = {}): Result {
  const p = Bun.spawnSync(argv, {
    env: opts.env ?? { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", LANG: "C.UTF-8" },
    cwd: opts.cwd ?? "/",
    stdin: opts.stdin === undefined ? "ignore" : Buffer.from(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
    timeout: opts.timeoutMs ?? 120_000,
  });
  return { code: p.exitCode ?? 128, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

function ok(r: Result, what: string): Result {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

function why(): string | null {
  if (process.getuid?.() !== 0) return "the release tests install a .deb and add a user: run them as root (CI does)";
  for (const t of ["dpkg-deb", "apt-get", "lintian", "qemu-aarch64-static", "useradd", "npm", "setpriv", "man", "zsh", "fish"]) {
    if (!Bun.which(t, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" })) return `${t} is missing: run scripts/setup.sh as root`;
  }
  if (sh(["dpkg-query", "-W", "-f=${Status}", "burrow"]).stdout.includes("ok installed"))
    return "the burrow package is already installed here: the apt test would remove it (apt-get remove burrow first)";
  if (existsSync("/usr/bin/burrow")) return "/usr/bin/burrow exists and belongs to no package: move it away first";
  return null;
}

const skip = why();
if (skip) console.warn(`skipping the release tests: ${skip}`);

interface FreshUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  runtimeDir: string;
}

let user: FreshUser;
/** A 0755 scratch directory the fresh user can read (www, npm prefix, old binary). */
let scratch: string;
let packagesBefore: Set<string>;
const tag = `${process.env.BURROW_TEST_RUN ?? `run-${process.pid}`}/release`;

function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: "/bin/bash",
    PATH: USER_PATH,
    LANG: "C.UTF-8",
    XDG_RUNTIME_DIR: user.runtimeDir,
    // The daemon goes soon after the last command, so the user can be removed.
    BURROW_IDLE_TIMEOUT: "1",
    BURROW_TEST_TAG: tag,
    ...extra,
  };
}

function asUser(argv: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Result {
  return sh(["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...argv], {
    env: userEnv(opts.env),
    cwd: user.home,
    timeoutMs: opts.timeoutMs,
  });
}

function spawnAsUser(argv: string[], env: Record<string, string> = {}) {
  return Bun.spawn(["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...argv], {
    env: userEnv(env),
    cwd: user.home,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}

/** Pids of the fresh user's processes. */
function userPids(): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const status = readFileSync(`/proc/${d}/status`, "utf8");
      const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
      if (Number(uid) === user.uid) out.push(Number(d));
    } catch {}
  }
  return out;
}

/** Waits for the user's daemon (idle timeout 1 s) and holder to go; returns what is left. */
async function userIdle(ms = 15_000): Promise<number[]> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!userPids().length) return [];
    await Bun.sleep(100);
  }
  return userPids();
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

async function fetchText(url: string, ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      return await r.text();
    } catch (e) {
      last = String(e);
    }
    await Bun.sleep(100);
  }
  throw new Error(`${url}: ${last}`);
}

function installedPackages(): Set<string> {
  return new Set(
    ok(sh(["dpkg-query", "-W", "-f=${Package}:${Architecture} ${Status}\n"]), "dpkg-query")
      .stdout.split("\n")
      .filter((l) => l.endsWith(" installed"))
      .map((l) => l.split(" ")[0]!),
  );
}

const aptEnv = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", DEBIAN_FRONTEND: "noninteractive", HOME: "/root", LANG: "C.UTF-8" };
const apt = (...args: string[]) => sh(["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "-q", ...args], { env: aptEnv, timeoutMs: 400_000 });

describe.skipIf(!!skip)("release", () => {
  beforeAll(async () => {
    // One build for the whole tier (and the bun runtime for arm64 comes from
    // Bun's install cache after the first run).
    // BURROW_RELEASE_REUSE=1 keeps an existing dist/release (iterating on these tests).
    if (!(process.env.BURROW_RELEASE_REUSE && existsSync(`${out}/SHA256SUMS`)))
      ok(
        sh([`${repoRoot}/node_modules/.bin/bun`, "run", "release"], {
          cwd: repoRoot,
          env: { ...process.env, CI: "" } as Record<string, string>,
          timeoutMs: 600_000,
        }),
        "bun run release",
      );
    packagesBefore = installedPackages();
    scratch = mkdtempSync("/tmp/burrow-release-");
    chmodSync(scratch, 0o755);
    const name = `brel${process.pid % 100000}`;
    ok(sh(["useradd", "-m", name]), "useradd");
    const uid = Number(ok(sh(["id", "-u", name]), "id -u").stdout);
    const gid = Number(ok(sh(["id", "-g", name]), "id -g").stdout);
    const home = sh(["getent", "passwd", name]).stdout.split(":")[5]!;
    user = { name, uid, gid, home, runtimeDir: `/run/user/${uid}` };
    // What systemd-logind does at login: a private tmpfs, 0700, owned by the user.
    mkdirSync(user.runtimeDir, { recursive: true, mode: 0o700 });
    ok(sh(["mount", "-t", "tmpfs", "-o", `mode=0700,uid=${uid},gid=${gid},size=10%`, "tmpfs", user.runtimeDir]), "mount /run/user/UID");
  }, 900_000);

  afterAll(async () => {
    if (!user) return;
    const left = await userIdle();
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    if (sh(["dpkg-query", "-W", "-f=${Status}", "burrow"]).stdout.includes("ok installed")) apt("remove", "burrow");
    const added = [...installedPackages()].filter((p) => !packagesBefore.has(p));
    if (added.length) apt("remove", ...added);
    sh(["umount", "-l", user.runtimeDir]);
    rmSync(user.runtimeDir, { recursive: true, force: true });
    sh(["userdel", "-r", user.name]);
    // userdel leaves subordinate ranges on some shadow versions: take them out.
    for (const f of ["/etc/subuid", "/etc/subgid"]) {
      const text = readFileSync(f, "utf8");
      const kept = text.split("\n").filter((l) => !l.startsWith(`${user.name}:`) && !l.startsWith(`${user.uid}:`));
      if (kept.join("\n") !== text) writeFileSync(f, kept.join("\n"));
    }
    rmSync(scratch, { recursive: true, force: true });
    expect(left).toEqual([]);
    expect(sh(["getent", "passwd", user.name]).code).not.toBe(0);
  }, 120_000);

  test("bun run release writes exactly the release files, and SHA256SUMS checks", () => {
    expect(readdirSync(out).sort()).toEqual(releaseFiles(pkgVersion).sort());
    const sums = readFileSync(`${out}/SHA256SUMS`, "utf8").trim().split("\n");
    expect(sums.map((l) => l.split(/\s+\*?/)[1]).sort()).toEqual(
      releaseFiles(pkgVersion)
        .filter((f) => f !== "SHA256SUMS")
        .sort(),
    );
    const check = sh(["sha256sum", "-c", "SHA256SUMS"], { cwd: out });
    expect(check.stderr).toBe("");
    expect(check.code).toBe(0);
    // A corrupt download: one line naming the file.
    const copy = `${scratch}/verify`;
    mkdirSync(copy);
    cpSync(`${out}/SHA256SUMS`, `${copy}/SHA256SUMS`);
    cpSync(`${out}/burrow-netns-${pkgVersion}.tgz`, `${copy}/burrow-netns-${pkgVersion}.tgz`);
    const bytes = readFileSync(`${copy}/burrow-netns-${pkgVersion}.tgz`);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(`${copy}/burrow-netns-${pkgVersion}.tgz`, bytes);
    const bad = sh(["sha256sum", "-c", "--ignore-missing", "SHA256SUMS"], { cwd: copy });
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toContain(`burrow-netns-${pkgVersion}.tgz: FAILED`);
  });

  test("the released x64 binary prints version, commit and build date", () => {
    const commit = sh(["git", "-C", repoRoot, "rev-parse", "--short=12", "HEAD"]).stdout.trim();
    const r = ok(sh([`${out}/burrow-linux-x64`, "--version"]), "--version");
    expect(r.stdout).toMatch(
      new RegExp(`^burrow version ${pkgVersion.replace(/\./g, "\\.")} \\(commit ${commit}, built \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\)\\n$`),
    );
  });

  test("both .debs: lintian clean, the fields and files the issue lists", () => {
    const l = sh(["lintian", "--pedantic", "--info", "--fail-on", "error,warning,info,pedantic", deb("amd64"), deb("arm64")], { timeoutMs: 300_000 });
    const tags = l.stdout.split("\n").filter((x) => /^[EWIPX]: /.test(x));
    expect(tags).toEqual([]);
    expect(l.code).toBe(0);
    for (const arch of ["amd64", "arm64"]) {
      const info = ok(sh(["dpkg-deb", "-f", deb(arch), "Version", "Architecture", "Depends", "Recommends"]), "dpkg-deb -f").stdout;
      expect(info).toContain(`Version: ${debVersion(pkgVersion)}\n`);
      expect(info).toContain(`Architecture: ${arch}\n`);
      expect(info).toContain("uidmap, slirp4netns | passt");
      expect(info).toContain(
        "Recommends: passt, slirp4netns, containernetworking-plugins, golang-github-containernetworking-plugin-dnsname, dnsmasq-base, iptables",
      );
      const files = ok(sh(["dpkg-deb", "-c", deb(arch)]), "dpkg-deb -c").stdout;
      for (const f of [
        "./usr/bin/burrow",
        "./usr/share/man/man1/burrow.1.gz",
        "./usr/share/man/man1/burrow-run.1.gz",
        "./usr/share/man/man1/burrow-network-create.1.gz",
        "./usr/share/bash-completion/completions/burrow",
        "./usr/share/zsh/vendor-completions/_burrow",
        "./usr/share/fish/vendor_completions.d/burrow.fish",
        "./usr/share/doc/burrow/copyright",
        "./usr/share/doc/burrow/changelog.Debian.gz",
      ]) {
        expect(files).toContain(` ${f}\n`);
      }
      expect(files).toMatch(/^-rwxr-xr-x root\/root .* \.\/usr\/bin\/burrow$/m);
    }
  }, 300_000);

  test("arm64: --version and doctor run under qemu-aarch64-static -L /", () => {
    const v = ok(asUser(["qemu-aarch64-static", "-L", "/", `${out}/burrow-linux-arm64`, "--version"]), "arm64 --version");
    expect(v.stdout).toStartWith(`burrow version ${pkgVersion} (commit `);
    const d = asUser(["qemu-aarch64-static", "-L", "/", `${out}/burrow-linux-arm64`, "doctor", "--format", "json"], { timeoutMs: 60_000 });
    const report = JSON.parse(d.stdout);
    expect(report.checks.filter((c: { level: string }) => c.level === "fail")).toEqual([]);
    expect(d.code).toBe(0);
    expect(report.checks.map((c: { check: string }) => c.check)).toContain("slirp4netns");
  });

  describe("apt route", () => {
    let listed: string[] = [];
    test("apt-get install ./burrow_VERSION_amd64.deb, Depends from Debian's archive", () => {
      ok(apt("install", deb("amd64")), "apt-get install");
      listed = ok(sh(["dpkg", "-L", "burrow"]), "dpkg -L")
        .stdout.trim()
        .split("\n");
      expect(listed).toContain("/usr/bin/burrow");
      // Nothing but burrow came in: setup already installs the Recommends.
      expect([...installedPackages()].filter((p) => !packagesBefore.has(p))).toEqual(["burrow:amd64"]);
    }, 400_000);

    test("the fresh user: subordinate ids from useradd, burrow doctor passes", () => {
      expect(readFileSync("/etc/subuid", "utf8")).toMatch(new RegExp(`^${user.name}:\\d+:65536$`, "m"));
      const d = asUser(["burrow", "doctor"]);
      expect(d.stdout).not.toContain("FAIL");
      expect(d.code).toBe(0);
    });

    test("a rootless run --rm -p 127.0.0.1:PORT:80 serves a page; completion names it; stop ends it", async () => {
      const www = `${scratch}/www`;
      mkdirSync(www, { mode: 0o755 });
      writeFileSync(`${www}/index.html`, `hello from ${user.name}\n`);
      chmodSync(`${www}/index.html`, 0o644);
      const port = freePort();
      const p = spawnAsUser(["burrow", "run", "--rm", "--name", "web", "-p", `127.0.0.1:${port}:80`, "--", "busybox", "httpd", "-f", "-p", "80", "-h", www]);
      try {
        expect(await fetchText(`http://127.0.0.1:${port}/`)).toBe(`hello from ${user.name}\n`);
        // bash completion of a sandbox name, from the running daemon.
        const c = asUser([
          "bash",
          "-c",
          `source /usr/share/bash-completion/completions/burrow; COMP_LINE="burrow stop w"; COMP_POINT=\${#COMP_LINE}; _burrow; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ]);
        expect(c.stdout).toBe("web\n");
        ok(asUser(["burrow", "stop", "web"]), "burrow stop web");
        expect(await p.exited).not.toBe(0);
      } finally {
        p.kill();
        await p.exited;
      }
      expect(await userIdle()).toEqual([]);
    }, 60_000);

    test("man burrow-run renders; bash completes burrow ru<TAB> without starting a daemon", async () => {
      expect(await userIdle()).toEqual([]);
      const m = asUser(["man", "-P", "cat", "burrow-run"], { env: { MANWIDTH: "80" } });
      expect(m.stderr).toBe("");
      expect(m.stdout).toContain("burrow-run - Run a command in a new network sandbox");
      expect(m.stdout).toContain("--publish");
      expect(ok(asUser(["man", "-P", "cat", "burrow"]), "man burrow").stdout).toContain("burrow-network-create(1)");
      const c = asUser([
        "bash",
        "-c",
        `source /usr/share/bash-completion/completions/burrow; COMP_LINE="burrow ru"; COMP_POINT=\${#COMP_LINE}; _burrow; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ]);
      expect(c.stdout).toBe("run\n");
      const s = asUser([
        "bash",
        "-c",
        `source /usr/share/bash-completion/completions/burrow; COMP_LINE="burrow stop "; COMP_POINT=\${#COMP_LINE}; _burrow; echo "n=\${#COMPREPLY[@]}"`,
      ]);
      expect(s.stdout).toBe("n=0\n");
      // fish loads the vendor file by itself.
      expect(asUser(["fish", "-c", 'complete -C "burrow network c"']).stdout).toBe("connect\ncreate\n");
      // zsh: the function as compinit would autoload it, with compadd and _files
      // standing in for the completion system's builtins.
      const z = asUser([
        "zsh",
        "-f",
        "-c",
        `compdef() { : }; source /usr/share/zsh/vendor-completions/_burrow; compadd() { print -l -- "\${@:#-*}" }; _files() { print FILES }; words=(burrow ru); CURRENT=2; _burrow; words=(burrow run --rm -- ls /); CURRENT=6; _burrow`,
      ]);
      expect(z.stdout).toBe("run\nFILES\n");
      expect(userPids()).toEqual([]);
      expect(existsSync(`${user.runtimeDir}/burrow/control.sock`)).toBe(false);
    });

    test("apt-get remove takes every file the package put there", () => {
      ok(apt("remove", "burrow"), "apt-get remove");
      // Files, and the directories that are burrow's own (/usr/share/doc/burrow).
      expect(listed.filter((f) => existsSync(f) && (!statSync(f).isDirectory() || f.includes("burrow")))).toEqual([]);
      expect(existsSync("/usr/bin/burrow")).toBe(false);
    }, 400_000);
  });

  test("npm route: local tarballs into a --prefix, a sandbox as the fresh user, npm uninstall -g", () => {
    const prefix = `${scratch}/npm`;
    mkdirSync(prefix, { mode: 0o755 });
    const npmEnv = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: scratch, npm_config_cache: `${scratch}/npm-cache`, npm_config_update_notifier: "false" };
    const tarballs = [`${out}/burrow-netns-linux-x64-${pkgVersion}.tgz`, `${out}/burrow-netns-${pkgVersion}.tgz`];
    ok(
      sh(["npm", "install", "-g", "--prefix", prefix, "--offline", "--no-audit", "--no-fund", ...tarballs], { env: npmEnv, timeoutMs: 300_000 }),
      "npm install -g",
    );
    const v = ok(asUser([`${prefix}/bin/burrow`, "--version"]), "npm burrow --version");
    expect(v.stdout).toStartWith(`burrow version ${pkgVersion} `);
    const r = asUser([`${prefix}/bin/burrow`, "run", "--rm", "--", "cat", "/proc/self/net/dev"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("tap0:");
    ok(sh(["npm", "uninstall", "-g", "--prefix", prefix, "burrow-netns", "burrow-netns-linux-x64"], { env: npmEnv, timeoutMs: 120_000 }), "npm uninstall -g");
    expect(existsSync(`${prefix}/bin/burrow`)).toBe(false);
    expect(readdirSync(`${prefix}/lib/node_modules`)).toEqual([]);
  }, 300_000);

  test("CNI plugins only in a Fedora-style /usr/libexec/cni (mount namespace): bridge networks work, no dnsname: warned", async () => {
    expect(await userIdle()).toEqual([]);
    // CNI's plugin discovery is what this tests: the user would get netavark otherwise (it is installed here).
    const env = Object.entries(userEnv({ BURROW_NETWORK_BACKEND: "cni" })).map(([k, v]) => `${k}=${v}`);
    const su = `setpriv --reuid=${user.uid} --regid=${user.gid} --init-groups -- env -i ${env.join(" ")}`;
    const script = [
      "set -e",
      // Fedora's layout: plugins in /usr/libexec/cni, none in /usr/lib/cni, no dnsname.
      "mount -t tmpfs -o mode=0755 tmpfs /usr/libexec",
      "mkdir /usr/libexec/cni",
      `for p in /usr/lib/cni/*; do n=$(basename $p); [ $n = dnsname ] && continue; touch /usr/libexec/cni/$n; mount --bind $p /usr/libexec/cni/$n; done`,
      "mount -t tmpfs -o mode=0755 tmpfs /usr/lib/cni",
      `${su} ${installedBin} network create fednet 2>&1`,
      `${su} ${installedBin} run --rm --network fednet -- ip -4 -o addr show eth0`,
      `${su} ${installedBin} doctor --format json > ${scratch}/doctor.json`,
      `${su} ${installedBin} network rm fednet`,
    ].join("\n");
    const r = sh(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script], { timeoutMs: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^WARN: the dnsname CNI plugin is not installed \(looked in .*\/usr\/libexec\/cni.*\): names and aliases do not resolve between sandboxes on network fednet\nfednet\n/,
    );
    expect(r.stdout).toMatch(/eth0\s+inet 10\.89\.\d+\.\d+\//);
    const doctor = JSON.parse(readFileSync(`${scratch}/doctor.json`, "utf8"));
    expect(doctor.checks.find((c: { check: string }) => c.check === "CNI plugins")).toMatchObject({ level: "ok", detail: "/usr/libexec/cni" });
    expect(doctor.checks.find((c: { check: string }) => c.check === "dnsname plugin")).toMatchObject({ level: "warn" });
    expect(await userIdle()).toEqual([]);
  }, 90_000);

  test("containers.conf cni_plugin_dirs and helper_binaries_dir are followed", async () => {
    const dir = `${scratch}/conf-cni`;
    mkdirSync(dir, { mode: 0o755 });
    for (const p of readdirSync("/usr/lib/cni")) if (p !== "dnsname") symlinkSync(`/usr/lib/cni/${p}`, `${dir}/${p}`);
    const conf = `${user.home}/.config/containers`;
    ok(asUser(["mkdir", "-p", conf]), "mkdir");
    const helpers = `${scratch}/helpers`;
    mkdirSync(helpers, { mode: 0o755 });
    symlinkSync(Bun.which("pasta")!, `${helpers}/pasta`);
    ok(
      asUser([
        "sh",
        "-c",
        `printf '[engine]\\nhelper_binaries_dir = ["${helpers}"]\\n[network]\\nnetwork_backend = "cni"\\ncni_plugin_dirs = ["${dir}"]\\n' > ${conf}/containers.conf`,
      ]),
      "write containers.conf",
    );
    try {
      const d = JSON.parse(asUser([installedBin, "doctor", "--format", "json"]).stdout);
      // The user's file is read last (it wins); the machine's own files, if any (podman's package ships one), come first.
      const files = d.checks.find((c: { check: string }) => c.check === "containers.conf");
      expect(files.level).toBe("ok");
      expect(files.detail).toMatch(new RegExp(`^read (\\S+containers\\.conf, )*${conf}/containers\\.conf$`));
      expect(d.checks.find((c: { check: string }) => c.check === "CNI plugins")).toMatchObject({ level: "ok", detail: dir });
      expect(d.checks.find((c: { check: string }) => c.check === "pasta").detail).toStartWith(`${helpers}/pasta: `);
      const pasta = asUser([installedBin, "run", "--rm", "--network", "pasta", "--", "true"]);
      expect(pasta.stderr).toBe("");
      expect(pasta.code).toBe(0);
      const c = asUser([installedBin, "network", "create", "confnet"]);
      expect(c.stderr).toContain(`WARN: the dnsname CNI plugin is not installed (looked in ${dir})`);
      expect(c.code).toBe(0);
      ok(asUser([installedBin, "network", "rm", "confnet"]), "network rm");
      // A broken file: doctor names it, no stack trace.
      ok(asUser(["sh", "-c", `printf '[network]\\ncni_plugin_dirs = "not a list"\\n' > ${conf}/containers.conf`]), "write containers.conf");
      const bad = asUser([installedBin, "doctor"]);
      expect(bad.code).toBe(125);
      expect(bad.stdout).toMatch(new RegExp(`FAIL\\s+containers.conf\\s+${conf}/containers.conf: network.cni_plugin_dirs: `));
    } finally {
      rmSync(`${user.home}/.config/containers`, { recursive: true, force: true });
    }
    expect(await userIdle()).toEqual([]);
  }, 60_000);

  test("upgrade from 0.1.0: state and runtime dir of its daemon are taken over, busy daemon gets one line", async () => {
    if (sh(["git", "-C", repoRoot, "cat-file", "-e", `${OLD_COMMIT}^{commit}`]).code !== 0) {
      throw new Error(`commit ${OLD_COMMIT} (burrow 0.1.0) is not in this clone: fetch the full history (git fetch --unshallow)`);
    }
    // Build 0.1.0 from its commit, with this checkout's node_modules.
    const src = `${scratch}/v0.1.0`;
    mkdirSync(src);
    ok(sh(["sh", "-c", `git -C ${repoRoot} archive ${OLD_COMMIT} | tar -x -C ${src}`]), "git archive");
    symlinkSync(`${repoRoot}/node_modules`, `${src}/node_modules`);
    ok(sh([`${repoRoot}/node_modules/.bin/bun`, "scripts/build.ts"], { cwd: src, timeoutMs: 120_000 }), "build 0.1.0");
    const old = `${src}/dist/burrow`;
    chmodSync(src, 0o755);
    expect(ok(asUser([old, "--version"]), "old --version").stdout).toStartWith("burrow version 0.1.0 ");

    const env = { BURROW_IDLE_TIMEOUT: "30" };
    ok(asUser([old, "network", "create", "upnet"], { env }), "old network create");
    ok(asUser([old, "run", "--name", "done1", "--", "true"], { env }), "old run done1");
    ok(asUser([old, "run", "-d", "--name", "up1", "--network", "upnet", "--", "sleep", "600"], { env }), "old run -d up1");
    const before = JSON.parse(ok(asUser([old, "inspect", "up1", "--format", "json"], { env }), "old inspect").stdout);
    const ipOf = (j: any) => JSON.stringify(j).match(/"(10\.89\.\d+\.\d+)"/)?.[1];
    const ip = ipOf(before);
    expect(ip).toBeDefined();

    // A busy old daemon: one line, what to do, no protocol error.
    const busy = asUser([installedBin, "ps"], { env });
    expect(busy.code).toBe(125);
    expect(busy.stderr.trim().split("\n")).toHaveLength(1);
    expect(busy.stderr).toMatch(
      /^Error: a daemon of an older burrow \(pid \d+\) still runs 1 sandbox \(up1\): burrow \S+ replaces it once they have exited, or now after "kill \d+"/,
    );
    const pid = Number(/kill (\d+)/.exec(busy.stderr)![1]);
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("__daemon");

    // Following the advice: the old daemon goes, the sandbox keeps running,
    // and the new daemon adopts it with its address.
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await Bun.sleep(50);
    const ps = JSON.parse(ok(asUser([installedBin, "ps", "-a", "--format", "json"], { env }), "new ps -a").stdout);
    const byName = Object.fromEntries(ps.map((s: any) => [s.Names[0], s.State]));
    expect(byName).toEqual({ up1: "running", done1: "exited" });
    expect(ipOf(JSON.parse(ok(asUser([installedBin, "inspect", "up1", "--format", "json"], { env }), "new inspect").stdout))).toBe(ip);
    const nets = ok(asUser([installedBin, "network", "ls", "-q"], { env }), "network ls").stdout;
    expect(nets.split("\n")).toContain("upnet");
    const other = ok(
      asUser([installedBin, "run", "--rm", "--network", "upnet", "--", "ip", "-4", "-o", "addr", "show", "eth0"], { env }),
      "new run on upnet",
    ).stdout;
    expect(other).toMatch(/inet 10\.89\./);
    expect(other).not.toContain(`inet ${ip}/`);
    ok(asUser([installedBin, "stop", "up1"], { env }), "stop up1");

    // An idle old daemon is replaced without a word.
    const newPid = JSON.parse(readFileSync(`${user.runtimeDir}/burrow/daemon.version`, "utf8")).pid;
    process.kill(newPid, "SIGTERM");
    for (let i = 0; i < 100 && existsSync(`/proc/${newPid}`); i++) await Bun.sleep(50);
    ok(asUser([old, "run", "--rm", "--", "true"], { env }), "old run again");
    const daemons = () =>
      userPids().filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("__daemon");
        } catch {
          return false;
        }
      });
    const [oldPid] = daemons();
    expect(oldPid).toBeDefined();
    const idle = asUser([installedBin, "ps", "-a", "-q"], { env });
    expect(idle.stderr).toBe("");
    expect(idle.code).toBe(0);
    const replaced = JSON.parse(readFileSync(`${user.runtimeDir}/burrow/daemon.version`, "utf8"));
    expect(replaced).toMatchObject({ version: pkgVersion });
    expect(daemons()).toEqual([replaced.pid]);
    expect(replaced.pid).not.toBe(oldPid);
    ok(asUser([installedBin, "rm", "up1", "done1"], { env: { BURROW_IDLE_TIMEOUT: "1" } }), "rm");
    ok(asUser([installedBin, "network", "rm", "upnet"], { env: { BURROW_IDLE_TIMEOUT: "1" } }), "network rm");
    const d = JSON.parse(readFileSync(`${user.runtimeDir}/burrow/daemon.version`, "utf8")).pid;
    process.kill(d, "SIGTERM");
    expect(await userIdle()).toEqual([]);
  }, 180_000);
});
