// dnsname's dnsmasq as burrow finds it (src/net/cni/dnsmasq.ts) and the
// helper ledger's calls for it, with real processes standing in for dnsmasq
// (a script named dnsmasq, so /proc/PID/comm says so) and a real database.
// Also where a sandbox's log is (src/paths.ts).
import { afterEach, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dnsmasqNetwork, dnsmasqOf, dnsmasqOwner, dnsnameDir, dnsnameNetworks, dnsnameRuntimeDir, stopDnsmasq } from "../../src/net/cni/dnsmasq.ts";
import { openState } from "../../src/state/db.ts";
import { HelperLedger } from "../../src/state/helpers.ts";
import { sandboxLog, type Paths } from "../../src/paths.ts";

const dirs: string[] = [];
const procs: Bun.Subprocess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function paths(rootless: boolean): Paths {
  const root = mkdtempSync(`${tmpdir()}/burrow-unit-`);
  dirs.push(root);
  return {
    rootless,
    uid: rootless ? 1000 : 0,
    runtimeDir: `${root}/run`,
    stateDir: `${root}/state`,
    cniConfigDir: `${root}/cni`,
    networksDir: "/tmp/n",
    netavarkDir: "/tmp/nv",
  };
}

let fakes = 0;

/**
 * A process whose comm is `name`, with `args` on its command line. Each has
 * a script of its own: comm says `name` from the execve on, before the shell
 * has read its script, so a second fake rewriting a shared one could leave
 * the first reading an empty file and ending (it did, once in a suite run).
 */
async function fake(dir: string, name: string, args: string[]): Promise<Bun.Subprocess> {
  const own = `${dir}/fake-${fakes++}`;
  mkdirSync(own);
  const bin = `${own}/${name}`;
  // A script run by its #! line has the script's name as comm while the shell runs it.
  writeFileSync(bin, "#!/bin/sh\nwhile :; do sleep 1; done\n");
  chmodSync(bin, 0o755);
  const p = Bun.spawn([bin, ...args], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  procs.push(p);
  for (let i = 0; i < 100; i++) {
    if ((await Bun.file(`/proc/${p.pid}/comm`).text()).trim() === name) break;
    await Bun.sleep(10);
  }
  return p;
}

test("dnsname's files: rootless in the state dir (a logout cannot take them), rootful in the runtime dir", () => {
  const rl = paths(true);
  expect(dnsnameRuntimeDir(rl)).toBe(`${rl.stateDir}/cni/run`);
  expect(dnsnameDir(rl, "n1")).toBe(`${rl.stateDir}/cni/run/containers/cni/dnsname/n1`);
  const rf = paths(false);
  expect(dnsnameDir(rf, "n1")).toBe(`${rf.runtimeDir}/containers/cni/dnsname/n1`);
  expect(dnsmasqNetwork(dnsmasqOwner("n1"))).toBe("n1");
  expect(dnsmasqNetwork("sandbox:abc")).toBeNull();
});

test("the pid file is believed only for a live dnsmasq started with that network's config", async () => {
  const p = paths(true);
  const dir = dnsnameDir(p, "net1");
  mkdirSync(dir, { recursive: true });
  expect(dnsmasqOf(p, "net1")).toBeNull(); // no pid file
  const real = await fake(dirs[0]!, "dnsmasq", ["-u", "root", `--conf-file=${dir}/dnsmasq.conf`]);
  const other = await fake(dirs[0]!, "dnsmasq", ["-u", "root", `--conf-file=${dnsnameDir(p, "net2")}/dnsmasq.conf`]);
  const notDnsmasq = Bun.spawn(["sleep", "60"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  procs.push(notDnsmasq);
  for (const [content, want] of [
    [`${real.pid}\n`, real.pid],
    [`${other.pid}\n`, null], // another network's
    [`${notDnsmasq.pid}\n`, null], // a reused pid
    ["garbage", null],
    ["1", null],
    ["", null],
  ] as const) {
    writeFileSync(`${dir}/pidfile`, content);
    expect({ content, pid: dnsmasqOf(p, "net1")?.pid ?? null }).toEqual({ content, pid: want });
  }
  writeFileSync(`${dir}/pidfile`, `${real.pid}\n`);
  expect(dnsmasqOf(p, "net1")?.startTime).toMatch(/^\d+$/);
  expect(dnsnameNetworks(p)).toEqual(["net1"]);
  // stopping it kills it and removes the network's files
  expect(stopDnsmasq(p, "net1")).toBe(real.pid);
  await real.exited;
  expect(real.signalCode).toBe("SIGKILL");
  expect(dnsnameNetworks(p)).toEqual([]);
  expect(other.exitCode === null && other.signalCode === null).toBe(true);
});

test("ledger: an intent nothing came of is cancelled; records() knows a recorded process by pid and start time", () => {
  const p = paths(true);
  mkdirSync(p.stateDir, { recursive: true });
  const ledger = new HelperLedger(openState(p.stateDir));
  const unused = ledger.intend("dnsmasq", dnsmasqOwner("n"));
  expect(ledger.all()).toHaveLength(1);
  unused.cancel();
  expect(ledger.all()).toEqual([]);
  const proc = Bun.spawn(["sleep", "60"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  procs.push(proc);
  ledger.intend("dnsmasq", dnsmasqOwner("n")).spawned(proc.pid);
  const row = ledger.all()[0]!;
  expect(row).toMatchObject({ kind: "dnsmasq", owner: "dnsname:n", pid: proc.pid });
  expect(ledger.records(proc.pid, row.pidStart!)).toBe(true);
  expect(ledger.records(proc.pid, "1")).toBe(false);
});

test("a sandbox's log: where its row says (the state dir), else where 0.2.0 kept it", () => {
  const p = paths(true);
  expect(sandboxLog(p, { id: "abc", runtime: { log: `${p.stateDir}/sandboxes/abc/log` } })).toBe(`${p.stateDir}/sandboxes/abc/log`);
  expect(sandboxLog(p, { id: "abc", runtime: {} })).toBe(`${p.runtimeDir}/sandboxes/abc/log`);
});
