// os-release, containers.conf and helper search: the pure parts of src/host.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { confFiles, parseConf, readHelperConf } from "../../src/machine/containers-conf.ts";
import { distroFrom, installCommand, packageFor, parseOsRelease } from "../../src/machine/distro.ts";
import { DEFAULT_CNI_PLUGIN_DIRS, cniPluginDirs, findCniPluginDir, findHelper, withSbin } from "../../src/machine/helpers.ts";
import { runChecks } from "../../src/machine/doctor.ts";

const dir = mkdtempSync(`${tmpdir()}/burrow-host-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function exe(path: string): string {
  mkdirSync(path.replace(/\/[^/]+$/, ""), { recursive: true });
  writeFileSync(path, "#!/bin/sh\necho fake 1.0\n");
  chmodSync(path, 0o755);
  return path;
}

describe("os-release and package names", () => {
  const cases: [string, string, string][] = [
    ['ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', "sudo apt install golang-github-containernetworking-plugin-dnsname", "debian"],
    ["ID=ubuntu\nID_LIKE=debian\n", "sudo apt install golang-github-containernetworking-plugin-dnsname", "debian"],
    ['ID=fedora\nPRETTY_NAME="Fedora Linux 41"', "sudo dnf install podman-plugins", "fedora"],
    ['ID="rocky"\nID_LIKE="rhel centos fedora"', "sudo dnf install podman-plugins", "fedora"],
    ["ID=arch\n", "sudo pacman -S podman-dnsname", "arch"],
    ["ID=endeavouros\nID_LIKE=arch\n", "sudo pacman -S podman-dnsname", "arch"],
    ['ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"', "sudo zypper install cni-plugin-dnsname", "suse"],
  ];
  for (const [text, fix, family] of cases) {
    test(`${text.split("\n")[0]} -> ${family}`, () => {
      const d = distroFrom(parseOsRelease(text));
      expect(d.family).toBe(family as never);
      expect(installCommand(d, "dnsname")).toBe(fix);
    });
  }

  test("quoting, comments and an unknown distribution", () => {
    expect(parseOsRelease(`# comment\nNAME="Foo \\"Bar\\""\nID='foo'\nbad line\n`)).toEqual({ NAME: 'Foo "Bar"', ID: "foo" });
    const d = distroFrom({ ID: "foo", PRETTY_NAME: "Foo OS" });
    expect(d).toEqual({ family: "unknown", name: "Foo OS" });
    expect(installCommand(d, "uidmap")).toBe("install uidmap (the Debian package name; Foo OS may call it differently)");
    expect(packageFor(distroFrom({ ID: "fedora" }), "uidmap")).toBe("shadow-utils");
    expect(packageFor(distroFrom({ ID: "arch" }), "cni-plugins")).toBe("cni-plugins");
  });
});

describe("containers.conf", () => {
  test("the keys burrow reads; everything else is ignored", () => {
    const text = `[engine]\nhelper_binaries_dir = ["/opt/h", "/usr/libexec/podman"]\nnetwork_cmd_path = "/opt/s/slirp4netns"\ncgroup_manager = "systemd"\n\n[network]\ncni_plugin_dirs = ["/opt/cni"]\nnetwork_backend = "cni"\n[containers]\nlog_size_max = -1\n`;
    expect(parseConf(text, "f")).toEqual({
      helperBinariesDir: ["/opt/h", "/usr/libexec/podman"],
      networkCmdPath: "/opt/s/slirp4netns",
      cniPluginDirs: ["/opt/cni"],
      networkBackend: "cni",
      logSizeMax: -1,
    });
  });

  test("bad TOML and bad values name the file and the key", () => {
    expect(() => parseConf("[network\n", "/etc/containers/containers.conf")).toThrow(/^\/etc\/containers\/containers.conf is not valid TOML: /);
    expect(() => parseConf('[network]\ncni_plugin_dirs = "/opt/cni"\n', "/x.conf")).toThrow(/^\/x.conf: network.cni_plugin_dirs: /);
    expect(() => parseConf("[engine]\nhelper_binaries_dir = [1]\n", "/x.conf")).toThrow(/^\/x.conf: engine.helper_binaries_dir.0: /);
  });

  test("later files win key by key; missing files are skipped; CONTAINERS_CONF alone", () => {
    const a = `${dir}/a.conf`;
    const b = `${dir}/b.conf`;
    writeFileSync(a, '[engine]\nhelper_binaries_dir = ["/a"]\n[network]\ncni_plugin_dirs = ["/a/cni"]\n');
    writeFileSync(b, '[network]\ncni_plugin_dirs = ["/b/cni"]\n');
    expect(readHelperConf([a, `${dir}/missing.conf`, b])).toEqual({ files: [a, b], helperBinariesDir: ["/a"], cniPluginDirs: ["/b/cni"] });
    expect(confFiles({ CONTAINERS_CONF: a })).toEqual([a]);
    const files = confFiles({ HOME: "/home/u" });
    expect(files[0]).toBe("/usr/share/containers/containers.conf");
    expect(files).toContain("/etc/containers/containers.conf");
    expect(files).toContain("/home/u/.config/containers/containers.conf");
    expect(confFiles({ HOME: "/home/u", XDG_CONFIG_HOME: "/cfg" })).toContain("/cfg/containers/containers.conf");
  });
});

describe("helper search", () => {
  test("CNI dirs: containers.conf, else Fedora, Debian and upstream places", () => {
    expect(DEFAULT_CNI_PLUGIN_DIRS).toEqual(["/usr/local/libexec/cni", "/usr/libexec/cni", "/usr/local/lib/cni", "/usr/lib/cni", "/opt/cni/bin"]);
    expect(cniPluginDirs({ files: [] })).toEqual(DEFAULT_CNI_PLUGIN_DIRS);
    expect(cniPluginDirs({ files: [], cniPluginDirs: ["/x"] })).toEqual(["/x"]);
    exe(`${dir}/cni2/bridge`);
    mkdirSync(`${dir}/cni1`, { recursive: true });
    writeFileSync(`${dir}/cni1/bridge`, "not executable");
    expect(findCniPluginDir("bridge", [`${dir}/cni1`, `${dir}/cni2`])).toBe(`${dir}/cni2`);
    expect(findCniPluginDir("dnsname", [`${dir}/cni1`, `${dir}/cni2`])).toBeNull();
  });

  test("helper_binaries_dir first, network_cmd_path for slirp4netns, then PATH and sbin", () => {
    const h = exe(`${dir}/helpers/pasta`);
    const p = exe(`${dir}/path/pasta`);
    const s = exe(`${dir}/elsewhere/slirp4netns`);
    exe(`${dir}/path/slirp4netns`);
    const path = `${dir}/path`;
    expect(findHelper("pasta", { files: [], helperBinariesDir: [`${dir}/helpers`] }, path)).toBe(h);
    expect(findHelper("pasta", { files: [] }, path)).toBe(p);
    expect(findHelper("slirp4netns", { files: [], networkCmdPath: s }, path)).toBe(s);
    expect(findHelper("slirp4netns", { files: [], networkCmdPath: `${dir}/nope` }, path)).toBe(`${dir}/path/slirp4netns`);
    expect(findHelper("burrow-no-such-helper", { files: [] }, path)).toBeNull();
    expect(withSbin("/usr/bin:/bin")).toBe("/usr/bin:/bin:/usr/sbin:/sbin");
    expect(withSbin("/sbin:/usr/bin")).toBe("/sbin:/usr/bin:/usr/sbin");
    expect(withSbin(undefined)).toBe("/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
  });
});

describe("doctor's checks", () => {
  const input = (over: Partial<Parameters<typeof runChecks>[0]> = {}) => ({
    uid: 4242,
    user: "nobody-here",
    env: { PATH: `${dir}/empty` },
    distro: distroFrom({ ID: "fedora", PRETTY_NAME: "Fedora Linux 41" }),
    conf: { files: [], cniPluginDirs: [`${dir}/empty-cni`], helperBinariesDir: [`${dir}/empty`] },
    ...over,
  });
  const byName = (checks: ReturnType<typeof runChecks>) => Object.fromEntries(checks.map((c) => [c.check, c]));

  test("missing pieces get the Fedora fixes; no XDG_RUNTIME_DIR says who makes it", () => {
    const c = byName(runChecks(input()));
    expect(c.distribution!.detail).toBe("Fedora Linux 41 (fixes below use dnf)");
    expect(c.XDG_RUNTIME_DIR!.level).toBe("fail");
    expect(c.XDG_RUNTIME_DIR!.detail).toContain("systemd-logind makes it when you log in");
    expect(c.XDG_RUNTIME_DIR!.fix).toBe("sudo install -d -m 0700 -o 4242 /run/user/4242 && export XDG_RUNTIME_DIR=/run/user/4242");
    expect(c["/etc/subuid"]!.fix).toStartWith("sudo usermod --add-subuids 100000-165535 nobody-here");
    expect(c["/etc/subgid"]!.fix).toStartWith("sudo usermod --add-subgids 100000-165535 nobody-here");
    // Neither backend of named networks: one line, naming today's (netavark).
    expect(c["bridge networks"]).toMatchObject({ level: "warn", fix: "sudo dnf install netavark aardvark-dns" });
    expect(c["CNI plugins"]).toBeUndefined();
    // newuidmap lives in /usr/bin or /usr/sbin here; the sbin fallback finds it.
    expect(["ok", "warn"]).toContain(c.newuidmap!.level);
  });

  test("a containers.conf error is a failure naming the file", () => {
    const c = byName(runChecks(input({ conf: new Error("/etc/containers/containers.conf: network.cni_plugin_dirs: Invalid type") })));
    expect(c["containers.conf"]).toMatchObject({ level: "fail", detail: "/etc/containers/containers.conf: network.cni_plugin_dirs: Invalid type" });
  });

  test("plugins in a configured directory, dnsname missing: a warning with the fix", () => {
    for (const p of ["bridge", "host-local", "portmap", "firewall", "tuning"]) exe(`${dir}/fed-cni/${p}`);
    const c = byName(runChecks(input({ conf: { files: ["/x"], cniPluginDirs: [`${dir}/fed-cni`] }, distro: distroFrom({ ID: "arch" }) })));
    expect(c["CNI plugins"]).toMatchObject({ level: "ok", detail: `${dir}/fed-cni` });
    expect(c["dnsname plugin"]).toMatchObject({ level: "warn", fix: "sudo pacman -S podman-dnsname" });
    expect(c["containers.conf"]).toMatchObject({ level: "ok", detail: "read /x" });
  });
});
