// Faults an adversarial run found in the daemon's reach (issue 19 items 4,
// 5 and 10): a stopped daemon, a FIFO given as a namespace, namespace paths
// burrow may not join, and the daemon's log after a logout. dist/burrow as
// the unprivileged test user; every test ends with the context's leak check.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { burrowContext, type BurrowContext, daemonPids } from "../helpers/context.ts";
import { burrowBin, integrationUnavailable, testUser } from "../helpers/env.ts";
import { listPids } from "../helpers/netns.ts";
import { until } from "../helpers/until.ts";
import { argvOf } from "../helpers/sys.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping daemon fault tests: ${why}`);

function envHas(pid: number, s: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").includes(s);
  } catch {
    return false;
  }
}

/** This context's live daemon, found by its runtime dir. */
function daemonPid(t: BurrowContext): number {
  const pids = daemonPids(t);
  if (pids.length !== 1) throw new Error(`expected one daemon for ${t.dirs.runtimeDir}, found ${pids.length}`);
  return pids[0]!;
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe.skipIf(!!why)("a daemon that does not answer (rootless)", () => {
  let t: BurrowContext;
  let stopped: number | null = null;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    // Resumed before the leak check, so that dispose can end it cleanly.
    if (stopped !== null) process.kill(stopped, "SIGCONT");
    stopped = null;
    await t.dispose();
  });

  test("a stopped daemon: the CLI gives up within the default bound, naming the daemon's pid and kill -CONT", async () => {
    await t.burrowOk(["ps", "-a"]);
    const pid = daemonPid(t);
    process.kill(pid, "SIGSTOP");
    stopped = pid;
    const t0 = Date.now();
    const r = await t.burrow(["ps", "-a"], { timeoutMs: 20_000 });
    const took = Date.now() - t0;
    expect(r.timedOut).toBe(false);
    expect(took).toBeLessThan(10_000);
    expect(r.code).toBe(125);
    const line = oneLine(r.stderr);
    expect(line).toContain(`the burrow daemon (pid ${pid}) has not answered`);
    expect(line).toContain(`kill -CONT ${pid}`);
    // BURROW_DAEMON_TIMEOUT sets the bound.
    const t1 = Date.now();
    const c = await t.burrow(["inspect", "nosuch"], { env: { BURROW_DAEMON_TIMEOUT: "1.5" }, timeoutMs: 20_000 });
    expect(c.timedOut).toBe(false);
    expect(Date.now() - t1).toBeLessThan(5_000);
    expect(oneLine(c.stderr)).toContain(`the burrow daemon (pid ${pid}) has not answered on ${t.dirs.runtimeDir}/control.sock in 1.5 s`);
    process.kill(pid, "SIGCONT");
    stopped = null;
    // Back: the same daemon answers again.
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    expect(daemonPid(t)).toBe(pid);
  }, 30_000);

  test("the bound is on the daemon answering, not on a long request: wait and a foreground run outlast it", async () => {
    await t.burrowOk(["run", "-d", "--name", "slow", "--network", "none", "--", "sleep", "2.5"]);
    const env = { BURROW_DAEMON_TIMEOUT: "0.5" };
    const w = await t.burrow(["wait", "slow"], { env });
    expect({ code: w.code, out: w.stdout.trim(), err: w.stderr }).toEqual({ code: 0, out: "0", err: "" });
    const r = await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", "sleep 1.5; exit 3"], { env });
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 3, err: "" });
    await t.burrowOk(["rm", "slow"]);
  });

  test("a CLI waiting on daemon.lock gives up at once, naming the pid, when the lock's holder is stopped", async () => {
    // What a CLI stopped half-way through starting the daemon (^Z) looks
    // like to the next one: a process that holds daemon.lock and does not run.
    const lock = `${t.dirs.runtimeDir}/daemon.lock`;
    const holder = t.spawn(["flock", lock, "sleep", "60"]);
    try {
      await until(() => readFileSync("/proc/locks", "utf8").includes(` ${holder.pid} `), 5000, "flock to hold daemon.lock");
      process.kill(holder.pid, "SIGSTOP");
      const t0 = Date.now();
      const r = await t.burrow(["ps", "-a"], { timeoutMs: 20_000 });
      expect({ timedOut: r.timedOut, code: r.code }).toEqual({ timedOut: false, code: 125 });
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(oneLine(r.stderr)).toContain(`another burrow command (pid ${holder.pid}) holds ${lock} and is stopped: resume it (kill -CONT ${holder.pid})`);
    } finally {
      // flock runs sleep as its child: both go.
      const children = readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
      for (const pid of [holder.pid, ...children]) process.kill(pid, "SIGKILL");
      await holder.exited;
    }
  });

  test("BURROW_DAEMON_TIMEOUT that is not a number of seconds is refused in one line", async () => {
    const r = await t.burrow(["ps"], { env: { BURROW_DAEMON_TIMEOUT: "soon" } });
    expect(r.code).toBe(125);
    expect(oneLine(r.stderr)).toContain('BURROW_DAEMON_TIMEOUT must be a number of seconds from 0.1 to 86400, such as 8 (got "soon")');
  });
});

describe.skipIf(!!why)("namespace paths from a request (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  async function refused(path: string, expected: string): Promise<void> {
    const r = await t.burrow(["run", "--rm", "--network", `ns:${path}`, "--", "true"], { timeoutMs: 15_000 });
    expect({ path, timedOut: r.timedOut, code: r.code }).toEqual({ path, timedOut: false, code: 125 });
    expect(oneLine(r.stderr)).toContain(expected);
  }

  test("a FIFO given as ns:PATH is refused at once and the daemon still answers the next command", async () => {
    const fifo = `${testUser().tmpdir}/burrow-fifo-${process.pid}`;
    rmSync(fifo, { force: true });
    await t.run(["mkfifo", fifo]);
    try {
      await refused(fifo, `network namespace path "${fifo}" is not a network namespace (it is a FIFO)`);
      // The daemon's main thread is not stuck in open(): the next command answers.
      const ps = await t.burrow(["ps", "-a", "--format", "json"], { timeoutMs: 15_000 });
      expect({ timedOut: ps.timedOut, code: ps.code, out: JSON.parse(ps.stdout) }).toEqual({ timedOut: false, code: 0, out: [] });
    } finally {
      rmSync(fifo, { force: true });
    }
  });

  test("ns: paths burrow may not join: permission denied and another user namespace's are said as such, with no stack trace", async () => {
    await refused("/proc/1/ns/net", 'network namespace path "/proc/1/ns/net" cannot be opened: permission denied');
    // /proc/self is the daemon: its netns is the host's, not its user namespace's to give.
    await refused("/proc/self/ns/net", 'network namespace path "/proc/self/ns/net" belongs to a user namespace burrow has no rights in');
    await refused("/proc/self/ns/uts", "is not a network namespace (it is a uts namespace)");
    await refused("/nonexistent/net", 'network namespace path "/nonexistent/net" does not exist');
    const log = readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8");
    expect(log).not.toContain("EPERM");
    expect(log).not.toMatch(/^\s+at /m);
  });

  test("ns: on another sandbox's pinned network namespace still joins it", async () => {
    const id = (await t.burrowOk(["run", "-d", "--network", "none", "--", "sleep", "60"])).trim();
    const pin = `${t.dirs.runtimeDir}/pins/${id}/net`;
    const inner = await t.burrowOk(["run", "--rm", "--network", `ns:${pin}`, "--", "readlink", "/proc/self/ns/net"]);
    const target = await t.burrowOk(["exec", id, "--", "readlink", "/proc/self/ns/net"]);
    expect(inner.trim()).toBe(target.trim());
    await t.burrowOk(["rm", "-f", id]);
  });
});

describe.skipIf(!!why)("the daemon's log after a logout (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("daemon.log comes back 0600 and the running daemon writes into it, also after a restart by its supervisor", async () => {
    await t.burrowOk(["run", "-d", "--name", "keep", "--network", "none", "--", "sleep", "60"]);
    const pid = daemonPid(t);
    const log = `${t.dirs.runtimeDir}/daemon.log`;
    rmSync(t.dirs.runtimeDir, { recursive: true, force: true });
    // The daemon's stderr is the new file, not the deleted one.
    await until(() => readlinkSync(`/proc/${pid}/fd/2`) === log, 10_000, "the daemon to reopen daemon.log");
    expect(statSync(log).mode & 0o777).toBe(0o600);
    // The supervisor's restart after kill -9 makes the file anew (`>>`):
    // private too. Stopped first, so that this daemon cannot reopen it itself.
    process.kill(pid, "SIGSTOP");
    rmSync(log);
    process.kill(pid, "SIGKILL");
    await until(() => listPids().some((p) => p !== pid && argvOf(p)[1] === "__daemon" && envHas(p, t.dirs.runtimeDir)), 10_000, "a new daemon");
    await until(() => statSync(log, { throwIfNoEntry: false }), 10_000, "daemon.log");
    expect(statSync(log).mode & 0o777).toBe(0o600);
    await t.burrowOk(["rm", "-f", "keep"]);
  });
});

describe.skipIf(!!why)("open-file limits (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  /** burrow ARGS under `ulimit -n N` (soft and hard, as a shell sets it). */
  const limited = (n: number, args: string[]) => t.run(["sh", "-c", `ulimit -n ${n} && exec "$0" "$@"`, burrowBin(), ...args]);

  test("a hard limit too low for the CLI, or for the daemon it would start, is one line and exit 125, with nothing left", async () => {
    const cli = await limited(16, ["ps", "-a"]);
    expect(cli.code).toBe(125);
    expect(oneLine(cli.stderr)).toContain("the open-file limit is 16 (ulimit -Hn) and burrow needs at least 32");
    const daemon = await limited(64, ["run", "--rm", "--network", "none", "--", "true"]);
    expect(daemon.code).toBe(125);
    expect(oneLine(daemon.stderr)).toContain(
      "the burrow daemon did not start: not starting: the open-file limit is 64 (ulimit -Hn) and the burrow daemon needs at least 128",
    );
  });

  test("the daemon runs with its soft limit raised to the hard one", async () => {
    await t.run(["sh", "-c", `ulimit -S -n 200 && exec "$0" ps`, burrowBin()]);
    const limits = readFileSync(`/proc/${daemonPid(t)}/limits`, "utf8");
    const [soft, hard] = /^Max open files\s+(\d+)\s+(\d+)/m.exec(limits)!.slice(1).map(Number);
    expect(soft).toBe(hard!);
  });
});

for (const mode of ["rootless", "rootful"] as const)
  describe.skipIf(!!why)(`run -d of a command that cannot run (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("not found is 127 and not executable 126, at once, as podman; the create is rolled back", async () => {
      for (const [argv, code, text] of [
        [["/nonexistent"], 127, "/nonexistent: executable file not found in $PATH"],
        [["/etc/passwd"], 126, "/etc/passwd: permission denied: the file is not executable"],
      ] as const) {
        for (const extra of [[], ["--rm"], ["-t"]]) {
          const r = await t.burrow(["run", "-d", ...extra, "--name", "never", "--network", "none", "--", ...argv]);
          expect({ argv, extra, code: r.code, out: r.stdout }).toEqual({ argv, extra, code, out: "" });
          expect(oneLine(r.stderr)).toContain(text);
        }
      }
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      // The name is free again, and a command that runs still gets its id.
      const id = (await t.burrowOk(["run", "-d", "--name", "never", "--network", "none", "--", "sh", "-c", "exit 127"])).trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect((await t.burrowOk(["wait", "never"])).trim()).toBe("127");
      await t.burrowOk(["rm", "never"]);
    });
  });

describe.skipIf(!!why)("inspect's State (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("carries every field of podman 4's State; StoppedByUser after a stop", async () => {
    await t.burrowOk(["run", "-d", "--name", "st", "--network", "none", "--", "sleep", "60"]);
    const state = async () => JSON.parse(await t.burrowOk(["inspect", "st"]))[0].State;
    const running = await state();
    expect(Object.keys(running)).toEqual([
      "OciVersion",
      "Status",
      "Running",
      "Paused",
      "Restarting",
      "OOMKilled",
      "Dead",
      "Pid",
      "ConmonPid",
      "ExitCode",
      "Error",
      "StartedAt",
      "FinishedAt",
      "Health",
      "CgroupPath",
      "CheckpointedAt",
      "RestoredAt",
      "StoppedByUser",
    ]);
    expect(running).toMatchObject({ Status: "running", Running: true, Paused: false, Dead: false, StoppedByUser: false });
    expect(running.CgroupPath).toStartWith("/");
    expect(running.Health).toEqual({ Status: "", FailingStreak: 0, Log: null });
    await t.burrowOk(["stop", "-t", "0", "st"]);
    expect(await state()).toMatchObject({ Status: "exited", Running: false, Pid: 0, StoppedByUser: true, CgroupPath: "" });
    await t.burrowOk(["start", "st"]);
    expect(await state()).toMatchObject({ Status: "running", StoppedByUser: false });
    await t.burrowOk(["rm", "-f", "st"]);
  });
});

describe.skipIf(!!why)("a stopped daemon and a FIFO namespace path (rootful)", () => {
  let t: BurrowContext;
  let stopped: number | null = null;
  beforeEach(async () => {
    t = await burrowContext("rootful");
  });
  afterEach(async () => {
    if (stopped !== null) process.kill(stopped, "SIGCONT");
    stopped = null;
    await t.dispose();
  });

  test("a stopped rootful daemon: the CLI gives up within the bound with the pid", async () => {
    await t.burrowOk(["ps", "-a"]);
    const pid = daemonPid(t);
    process.kill(pid, "SIGSTOP");
    stopped = pid;
    const r = await t.burrow(["ps", "-a"], { env: { BURROW_DAEMON_TIMEOUT: "2" }, timeoutMs: 20_000 });
    expect({ timedOut: r.timedOut, code: r.code }).toEqual({ timedOut: false, code: 125 });
    expect(oneLine(r.stderr)).toContain(`the burrow daemon (pid ${pid}) has not answered`);
    process.kill(pid, "SIGCONT");
    stopped = null;
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
  });

  test("ns:/run/netns/NAME (ip netns add) still joins that namespace", async () => {
    const path = t.netns!.path;
    const inner = await t.burrowOk(["run", "--rm", "--network", `ns:${path}`, "--", "readlink", "/proc/self/ns/net"]);
    expect(inner.trim()).toBe(`net:[${statSync(path).ino}]`);
  });

  test("a FIFO given as ns:PATH is refused at once and the rootful daemon still answers", async () => {
    const fifo = `${t.dirs.root}/fifo`;
    await t.run(["mkfifo", fifo]);
    const r = await t.burrow(["run", "--rm", "--network", `ns:${fifo}`, "--", "true"], { timeoutMs: 15_000 });
    expect({ timedOut: r.timedOut, code: r.code }).toEqual({ timedOut: false, code: 125 });
    expect(oneLine(r.stderr)).toContain(`network namespace path "${fifo}" is not a network namespace (it is a FIFO)`);
    const ps = await t.burrow(["ps", "-a", "--format", "json"], { timeoutMs: 15_000 });
    expect({ timedOut: ps.timedOut, code: ps.code, out: JSON.parse(ps.stdout) }).toEqual({ timedOut: false, code: 0, out: [] });
  });
});
