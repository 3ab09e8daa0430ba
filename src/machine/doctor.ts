// The probes behind `burrow doctor`: what this machine lacks for burrow, each
// with the fix for the distribution /etc/os-release names. Reads files and
// runs helpers' --version only: no daemon, no root, nothing written.
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { findRange } from "../userns/idmap.ts";
import { resolvePaths } from "../paths.ts";
import { checkStateDb } from "../state/check.ts";
import { cleanEnv } from "../sys/env.ts";
import { LANDLOCK_MIN_ABI, landlockAbi } from "../sys/caps.ts";
import { readHelperConf, type HelperConf } from "./containers-conf.ts";
import { hostDistro, installCommand, type Distro } from "./distro.ts";
import { findNetavarkHelper } from "../net/netavark/run.ts";
import { cniPluginDirs, findCniPluginDir, findHelper } from "./helpers.ts";
import { rootlessDefault } from "./rootless-default.ts";

export type Level = "ok" | "warn" | "fail";
export interface Check {
  check: string;
  level: Level;
  detail: string;
  fix?: string;
}

export interface DoctorInput {
  uid: number;
  user: string;
  env: Record<string, string | undefined>;
  distro: Distro;
  /** containers.conf as read, or the error reading it. */
  conf: HelperConf | Error;
  /** Landlock's ABI version, 0 without it (src/sys/caps.ts). */
  landlockAbi?: number;
  /** Where the state database is (absent: not checked, e.g. no runtime dir to resolve paths). */
  stateDir?: string;
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

export function hostInput(): DoctorInput {
  const uid = process.getuid?.() ?? 0;
  let user = String(uid);
  try {
    user = userInfo().username;
  } catch {}
  let conf: HelperConf | Error;
  try {
    conf = readHelperConf();
  } catch (e) {
    conf = e instanceof Error ? e : new Error(String(e));
  }
  let stateDir: string | undefined;
  try {
    stateDir = resolvePaths().stateDir;
  } catch {} // XDG_RUNTIME_DIR missing: its own check says so
  return { uid, user, env: process.env, distro: hostDistro(), conf, stateDir, landlockAbi: landlockAbi() };
}

export function runChecks(input: DoctorInput = hostInput()): Check[] {
  const { uid, user, env, distro } = input;
  const out: Check[] = [];
  const rootless = uid !== 0;
  const add = (check: string, level: Level, detail: string, fix?: string) => out.push({ check, level, detail, ...(fix ? { fix } : {}) });
  const conf = input.conf instanceof Error ? { files: [] } : input.conf;
  const search = env.PATH;

  add("distribution", "ok", `${distro.name} (fixes below use ${installCommand(distro).split(" ")[1] ?? "its package manager"})`);
  if (input.conf instanceof Error)
    add(
      "containers.conf",
      "fail",
      input.conf.message,
      "fix or remove that file (burrow reads helper_binaries_dir, network_cmd_path and cni_plugin_dirs from it)",
    );
  else if (conf.files.length) add("containers.conf", "ok", `read ${conf.files.join(", ")}`);

  if (rootless) {
    const xdg = env.XDG_RUNTIME_DIR;
    const logind = "systemd-logind makes it when you log in (pam_systemd); without logind (containers, su, cron) make it yourself";
    if (!xdg) {
      const have = existsSync(`/run/user/${uid}`);
      add(
        "XDG_RUNTIME_DIR",
        "fail",
        `not set${have ? ` (/run/user/${uid} exists)` : ""}: ${logind}`,
        `${have ? "" : `sudo install -d -m 0700 -o ${uid} /run/user/${uid} && `}export XDG_RUNTIME_DIR=/run/user/${uid}`,
      );
    } else if (!existsSync(xdg)) add("XDG_RUNTIME_DIR", "fail", `${xdg} does not exist: ${logind}`, `sudo install -d -m 0700 -o ${uid} ${xdg}`);
    else {
      const st = statSync(xdg);
      if (st.uid !== uid || (st.mode & 0o077) !== 0)
        add("XDG_RUNTIME_DIR", "fail", `${xdg} must be yours and mode 0700`, `sudo chown ${uid} ${xdg} && chmod 0700 ${xdg}`);
      else add("XDG_RUNTIME_DIR", "ok", xdg);
    }
    for (const [file, flag] of [
      ["/etc/subuid", "--add-subuids"],
      ["/etc/subgid", "--add-subgids"],
    ] as const) {
      const r = findRange(read(file) ?? "", user, uid);
      if (r) add(file, "ok", `${user}: ${r.start}+${r.count}`);
      else
        add(
          file,
          "warn",
          `no range for ${user}: burrow falls back to a single-id user namespace`,
          `sudo usermod ${flag} 100000-165535 ${user} (pick a range no other user in ${file} has)`,
        );
    }
    for (const bin of ["newuidmap", "newgidmap"]) {
      const p = findHelper(bin, conf, search);
      if (!p) add(bin, "warn", "not installed: burrow falls back to a single-id user namespace", installCommand(distro, "uidmap"));
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
    if (code === "ENOENT")
      add("/dev/net/tun", "fail", "missing: slirp4netns and pasta need it", "sudo modprobe tun (or sudo mknod -m 0666 /dev/net/tun c 10 200)");
    else
      add(
        "/dev/net/tun",
        "fail",
        `not usable by you (${code}): slirp4netns fails with "Permission denied"`,
        "sudo chmod 0666 /dev/net/tun (the mode desktop distributions ship)",
      );
  }
  const slirp = findHelper("slirp4netns", conf, search);
  const pasta = findHelper("pasta", conf, search);
  const chosen = rootlessDefault(conf, (name) => findHelper(name, conf, search));
  const role = (name: "slirp4netns" | "pasta") =>
    chosen.mode === name ? `the rootless default; ${chosen.why.replace(/^rootless: /, "")}` : `needed for --network ${name}`;
  // Rootless runs need one of the two user-mode stacks; either one will do for a plain `run`.
  if (slirp) add("slirp4netns", "ok", `${slirp}: ${versionOf(slirp)}`);
  else add("slirp4netns", rootless && !pasta ? "fail" : "warn", `not installed: ${role("slirp4netns")}`, installCommand(distro, "slirp4netns"));
  if (pasta) add("pasta", "ok", `${pasta}: ${versionOf(pasta)}`);
  else add("pasta", "warn", `not installed: ${role("pasta")}`, installCommand(distro, "pasta"));
  if (rootless && chosen.fallback) add("rootless default", "warn", chosen.fallback, installCommand(distro, chosen.mode === "pasta" ? "slirp4netns" : "pasta"));

  const dirs = cniPluginDirs(conf);
  const pluginDir = findCniPluginDir("bridge", dirs);
  // Named networks: netavark (podman 4-6) or the CNI plugins (podman v3); src/net/registry.ts picks.
  const netavark = findNetavarkHelper("netavark", conf);
  if (netavark) {
    const aardvark = findNetavarkHelper("aardvark-dns", conf);
    add("netavark", "ok", `${netavark}: ${versionOf(netavark)}`);
    if (!aardvark)
      add("aardvark-dns", "warn", "not installed: names do not resolve between sandboxes on netavark networks", installCommand(distro, "netavark"));
  }
  if (!pluginDir && !netavark)
    add("bridge networks", "warn", "neither netavark nor the CNI plugins are installed: bridge networks unavailable", installCommand(distro, "netavark"));
  else if (!pluginDir) {
    // netavark serves them: CNI's plugins are not needed.
  } else {
    const missing = ["bridge", "host-local", "portmap", "firewall", "tuning"].filter((p) => !existsSync(`${pluginDir}/${p}`));
    if (missing.length) add("CNI plugins", "warn", `${pluginDir} lacks ${missing.join(", ")}`, installCommand(distro, "cni-plugins"));
    else add("CNI plugins", "ok", pluginDir);
    const dnsname = findCniPluginDir("dnsname", dirs);
    if (!dnsname)
      add("dnsname plugin", "warn", "not installed: names and aliases do not resolve between sandboxes on bridge networks", installCommand(distro, "dnsname"));
    else add("dnsname plugin", "ok", `${dnsname}/dnsname`);
    const dnsmasq = findHelper("dnsmasq", conf, search);
    if (!dnsmasq) add("dnsmasq", "warn", "not installed: the dnsname plugin needs it", installCommand(distro, "dnsmasq"));
    else add("dnsmasq", "ok", dnsmasq);
  }
  const iptables = findHelper("iptables", conf, search);
  if (!iptables) add("iptables", "warn", "not installed: bridge networks need it for masquerade and port mapping", installCommand(distro, "iptables"));
  else add("iptables", "ok", iptables);
  if (input.stateDir) {
    // Read-only, with no daemon: a damaged database stops the daemon from
    // starting, and its sandboxes would run on unmanaged (issue 19 item 8).
    const health = checkStateDb(input.stateDir);
    if (health.ok) add("state database", "ok", health.detail);
    else if (health.newer) add("state database", "fail", health.detail, "run the newer burrow that made it, or upgrade this one");
    else
      add(
        "state database",
        "fail",
        health.detail,
        "burrow system recover (sets the file aside, keeps the sandboxes whose records can still be read, stops the rest)",
      );
  }
  const start = read("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  if (rootless && start !== null)
    add(
      "unprivileged ports",
      "ok",
      `host ports from ${start} can be published without root`,
      Number(start) > 0 ? `to publish lower ports: sudo sysctl net.ipv4.ip_unprivileged_port_start=<port>` : undefined,
    );
  if (input.landlockAbi !== undefined) {
    if (input.landlockAbi >= LANDLOCK_MIN_ABI) add("Landlock", "ok", `ABI ${input.landlockAbi}: each sandbox's processes are out of reach of the others'`);
    else
      add(
        "Landlock",
        "warn",
        `${input.landlockAbi ? `ABI ${input.landlockAbi} is too old` : "not enabled"}: a sandboxed command can ptrace processes of another sandbox that has no more capabilities than it, and use that sandbox's network`,
        "Linux 5.19 or later with landlock in the kernel's lsm= list (CONFIG_LSM, or lsm= on the kernel command line)",
      );
  }
  return out;
}
