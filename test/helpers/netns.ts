// Network namespaces made for rootful tests, so a rootful burrow never
// touches the machine's own links, routes or firewall. Runs as root.
//
// Commands go in with `nsenter --net=/run/netns/NAME` and not `ip netns
// exec`: the latter also makes a new mount namespace (to bind /etc/netns and
// remount /sys), which would hide burrow's pins from the test and from every
// later command.
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { runPrefix } from "./env.ts";

export interface TestNetns {
  name: string;
  /** /run/netns/NAME, for nsenter --net= or setns. */
  path: string;
  /** Kills what still runs inside (returns their descriptions) and deletes it. */
  remove(): Promise<string[]>;
}

/** Names of the namespaces these helpers made and have not removed yet;
 * the leak check does not count them. */
export const activeNetns = new Set<string>();

async function sh(cmd: string[]): Promise<void> {
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed (${code}): ${err.trim()}`);
}

export async function createNetns(): Promise<TestNetns> {
  const name = runPrefix + crypto.randomUUID().slice(0, 6);
  const path = `/run/netns/${name}`;
  await sh(["ip", "netns", "add", name]);
  activeNetns.add(name);
  try {
    await sh(["ip", "-n", name, "link", "set", "lo", "up"]);
  } catch (e) {
    await removeNetns(name);
    throw e;
  }
  return { name, path, remove: () => removeNetns(name) };
}

/**
 * Gives a test netns what a host's rootful pasta copies into a sandbox: an
 * interface with an IPv4 address and a default route (pasta refuses to start
 * without one: "No external routable interface"). A veth pair inside the
 * namespace (this kernel may lack the dummy driver), documentation addresses
 * (RFC 5737): what is sent out goes nowhere. Deleted with the namespace.
 */
export async function addUplink(ns: TestNetns): Promise<void> {
  await sh(["ip", "-n", ns.name, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"]);
  await sh(["ip", "-n", ns.name, "addr", "add", "192.0.2.10/24", "dev", "uplink0"]);
  await sh(["ip", "-n", ns.name, "link", "set", "uplink0", "up"]);
  await sh(["ip", "-n", ns.name, "link", "set", "uplink1", "up"]);
  await sh(["ip", "-n", ns.name, "route", "add", "default", "via", "192.0.2.1", "dev", "uplink0"]);
}

/** A namespace's identity as /proc/PID/ns/net shows it ("net:[INODE]"), for
 * a /proc/PID/ns/* link or a pin such as /run/netns/NAME. */
export function netnsId(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    try {
      return `net:[${statSync(path).ino}]`;
    } catch {
      return null;
    }
  }
}

/** Pids of the processes whose network namespace is `name`. */
export function pidsInNetns(name: string): number[] {
  const want = netnsId(`/run/netns/${name}`);
  if (!want) return [];
  return listPids().filter((pid) => netnsId(`/proc/${pid}/ns/net`) === want);
}

export function listPids(): number[] {
  return readdirSync("/proc")
    .filter((e) => /^[0-9]+$/.test(e))
    .map(Number);
}

function describePid(pid: number): string {
  try {
    return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim()}`;
  } catch {
    return String(pid);
  }
}

/** Kills `pids` (TERM, then KILL after `graceMs`) and waits until they are gone. */
export async function killPids(pids: number[], graceMs = 2000): Promise<void> {
  const alive = (pid: number) => existsSync(`/proc/${pid}`) && !isZombie(pid);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {}
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await Bun.sleep(20);
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  const hard = Date.now() + 2000;
  while (pids.some(alive) && Date.now() < hard) await Bun.sleep(20);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] === "Z";
  } catch {
    return false;
  }
}

export async function removeNetns(name: string): Promise<string[]> {
  const pids = pidsInNetns(name);
  const killed = pids.map(describePid);
  if (pids.length) await killPids(pids);
  if (existsSync(`/run/netns/${name}`)) await sh(["ip", "netns", "delete", name]);
  activeNetns.delete(name);
  return killed;
}
