// `burrow doctor`: what this machine lacks for burrow, and how to fix it.
// Runs in the CLI only (no daemon): every check reads files or runs --version.
import { defineCommand } from "citty";
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { parseStrict, str } from "./_args.ts";
import { formatArg, printJson } from "./_shared.ts";
import { findRange } from "../userns/idmap.ts";
import { cleanEnv, getuid } from "../host.ts";
import { DEFAULT_PLUGIN_DIRS } from "../net/cni/dirs.ts";

type Level = "ok" | "warn" | "fail";
interface Check {
  check: string;
  level: Level;
  detail: string;
  fix?: string;
}

function which(name: string): string | null {
  for (const dir of `${process.env.PATH ?? ""}:/usr/sbin:/sbin:/usr/bin:/bin`.split(":")) {
    if (dir && existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

function versionOf(bin: string, arg = "--version"): string {
  const p = Bun.spawnSync([bin, arg], { env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  return (
    (p.stdout.toString() + p.stderr.toString())
      .split("\n")
      .find((l) => l.trim())
      ?.trim() ?? "unknown version"
  );
}

export function runChecks(): Check[] {
  const out: Check[] = [];
  const uid = getuid();
  const rootless = uid !== 0;
  let user = String(uid);
  try {
    user = userInfo().username;
  } catch {}
  const add = (check: string, level: Level, detail: string, fix?: string) => out.push({ check, level, detail, ...(fix ? { fix } : {}) });

  if (rootless) {
    const xdg = process.env.XDG_RUNTIME_DIR;
    if (!xdg) add("XDG_RUNTIME_DIR", "fail", "not set", `sudo install -d -m 0700 -o ${uid} /run/user/${uid} && export XDG_RUNTIME_DIR=/run/user/${uid}`);
    else if (!existsSync(xdg)) add("XDG_RUNTIME_DIR", "fail", `${xdg} does not exist`, `sudo install -d -m 0700 -o ${uid} ${xdg}`);
    else {
      const st = statSync(xdg);
      if (st.uid !== uid || (st.mode & 0o077) !== 0)
        add("XDG_RUNTIME_DIR", "fail", `${xdg} must be yours and mode 0700`, `sudo chown ${uid} ${xdg} && chmod 0700 ${xdg}`);
      else add("XDG_RUNTIME_DIR", "ok", xdg);
    }
    for (const file of ["/etc/subuid", "/etc/subgid"]) {
      const r = findRange(read(file) ?? "", user, uid);
      if (r) add(file, "ok", `${user}: ${r.start}+${r.count}`);
      else
        add(
          file,
          "warn",
          `no range for ${user}: burrow falls back to a single-id user namespace`,
          `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}`,
        );
    }
    for (const bin of ["newuidmap", "newgidmap"]) {
      const p = which(bin);
      if (!p) add(bin, "warn", "not installed: burrow falls back to a single-id user namespace", "sudo apt-get install uidmap");
      else add(bin, "ok", p);
    }
    const maxNs = read("/proc/sys/user/max_user_namespaces");
    const clone = read("/proc/sys/kernel/unprivileged_userns_clone");
    const apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    if (maxNs === "0") add("user namespaces", "fail", "user.max_user_namespaces is 0", "sudo sysctl user.max_user_namespaces=28633");
    else if (clone === "0") add("user namespaces", "fail", "kernel.unprivileged_userns_clone is 0", "sudo sysctl kernel.unprivileged_userns_clone=1");
    else if (apparmor === "1")
      add(
        "user namespaces",
        "warn",
        "AppArmor restricts unprivileged user namespaces",
        "add an AppArmor profile allowing userns for burrow, or sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0",
      );
    else add("user namespaces", "ok", `max_user_namespaces=${maxNs ?? "?"}`);
  }
  try {
    accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
    add("/dev/net/tun", "ok", "readable and writable");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") add("/dev/net/tun", "fail", "missing: slirp4netns and pasta need it", "sudo modprobe tun (or mknod /dev/net/tun c 10 200)");
    else
      add(
        "/dev/net/tun",
        "fail",
        `not usable by you (${code}): slirp4netns fails with "Permission denied"`,
        "sudo chmod 0666 /dev/net/tun (the mode desktop distributions ship)",
      );
  }
  const slirp = which("slirp4netns");
  if (slirp) add("slirp4netns", "ok", `${slirp}: ${versionOf(slirp)}`);
  else
    add(
      "slirp4netns",
      rootless ? "fail" : "warn",
      "not installed: needed for --network slirp4netns (the rootless default)",
      "sudo apt-get install slirp4netns",
    );
  const pasta = which("pasta");
  if (pasta) add("pasta", "ok", `${pasta}: ${versionOf(pasta)}`);
  else add("pasta", "warn", "not installed: needed for --network pasta", "sudo apt-get install passt");
  const pluginDir = DEFAULT_PLUGIN_DIRS.find((d) => existsSync(`${d}/bridge`));
  if (!pluginDir)
    add(
      "CNI plugins",
      "warn",
      `no bridge plugin in ${DEFAULT_PLUGIN_DIRS.join(", ")}: bridge networks unavailable`,
      "sudo apt-get install containernetworking-plugins",
    );
  else {
    const missing = ["bridge", "host-local", "portmap", "firewall", "tuning"].filter((p) => !existsSync(`${pluginDir}/${p}`));
    if (missing.length) add("CNI plugins", "warn", `${pluginDir} lacks ${missing.join(", ")}`, "sudo apt-get install containernetworking-plugins");
    else add("CNI plugins", "ok", pluginDir);
    if (!DEFAULT_PLUGIN_DIRS.some((d) => existsSync(`${d}/dnsname`)))
      add(
        "dnsname plugin",
        "warn",
        "not installed: sandboxes on a network cannot resolve each other by name",
        "sudo apt-get install golang-github-containernetworking-plugin-dnsname",
      );
    else add("dnsname plugin", "ok", "installed");
    if (!which("dnsmasq")) add("dnsmasq", "warn", "not installed: the dnsname plugin needs it", "sudo apt-get install dnsmasq-base");
    else add("dnsmasq", "ok", which("dnsmasq")!);
  }
  if (!which("iptables")) add("iptables", "warn", "not installed: bridge networks need it for masquerade and port mapping", "sudo apt-get install iptables");
  else add("iptables", "ok", which("iptables")!);
  const start = read("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  if (rootless && start !== null)
    add(
      "unprivileged ports",
      "ok",
      `host ports from ${start} can be published without root`,
      Number(start) > 0 ? `to publish lower ports: sudo sysctl net.ipv4.ip_unprivileged_port_start=<port>` : undefined,
    );
  return out;
}

const args = { ...formatArg } as const;

export default defineCommand({
  meta: { name: "doctor", description: "Check what this machine lacks for burrow, and say how to fix it" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "doctor" });
    const checks = runChecks();
    const failed = checks.some((c) => c.level === "fail");
    if (str(p, "format") === "json") printJson({ ok: !failed, checks });
    else {
      const mark = { ok: "ok  ", warn: "WARN", fail: "FAIL" } as const;
      const width = Math.max(...checks.map((c) => c.check.length));
      for (const c of checks) {
        process.stdout.write(`${mark[c.level]}  ${c.check.padEnd(width)}  ${c.detail}\n`);
        if (c.fix && c.level !== "ok") process.stdout.write(`      ${" ".repeat(width)}  fix: ${c.fix}\n`);
      }
    }
    if (failed) process.exitCode = 125;
  },
});
