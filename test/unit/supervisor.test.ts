// The holder's supervisor script (src/userns/supervisor.ts), run by the real
// /bin/sh with a stand-in daemon: a shell that records each start and then
// does what the test's control file says (exit with a status, or sleep).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { SUPERVISOR_IDLE_LINE, supervisorEnv } from "../../src/userns/supervisor.ts";
import { eventually } from "../helpers/until.ts";

let dir: string;
let sup: ReturnType<typeof Bun.spawn> | null = null;

beforeEach(() => {
  dir = mkdtempSync(`${tmpdir()}/burrow-supervisor-`);
});
afterEach(() => {
  for (const pid of children()) process.kill(pid, "SIGKILL");
  sup?.kill("SIGKILL");
  sup = null;
  rmSync(dir, { recursive: true, force: true });
});

const fakeDaemon = `echo start >>"$0/starts"; read what <"$0/do"; [ "$what" = sleep ] && exec sleep 60; exit "$what"`;

/** Starts the supervisor: the holder's (default), or the rootful one that exits when its daemon stops. */
function start(first: string, opts: { exitOnStop?: boolean } = {}): void {
  writeFileSync(`${dir}/do`, `${first}\n`);
  sup = Bun.spawn(["/bin/sh", "-c", 'eval "$BURROW_SUPERVISOR"', "supervise", "/bin/sh", "-c", fakeDaemon, dir], {
    env: { PATH: "/usr/bin:/bin", ...supervisorEnv(`${dir}/daemon.log`, opts) },
    stdio: ["ignore", "ignore", "ignore"],
  });
}

const starts = () => {
  try {
    return readFileSync(`${dir}/starts`, "utf8").split("\n").filter(Boolean).length;
  } catch {
    return 0;
  }
};
const logText = () => {
  try {
    return readFileSync(`${dir}/daemon.log`, "utf8");
  } catch {
    return "";
  }
};
function children(): number[] {
  if (!sup) return [];
  try {
    return readFileSync(`/proc/${sup.pid}/task/${sup.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
const until = (cond: () => boolean | Promise<boolean>, ms = 5000) => eventually(cond, ms);

test("a daemon killed by a signal is started again at once", async () => {
  start("sleep");
  expect(await until(() => starts() === 1 && children().length === 1)).toBe(true);
  const [first] = children();
  process.kill(first!, "SIGKILL");
  expect(await until(() => starts() === 2 && children().length === 1 && children()[0] !== first)).toBe(true);
  expect(logText()).not.toContain(SUPERVISOR_IDLE_LINE);
});

test("a daemon killed again and again right after its start is still restarted, once a second", async () => {
  start("sleep");
  let last = 0;
  for (let i = 1; i <= 4; i++) {
    expect(await until(() => starts() === i && children().length === 1 && children()[0] !== last, 3000)).toBe(true);
    last = children()[0]!;
    process.kill(last, "SIGKILL");
  }
  expect(await until(() => starts() === 5 && children().length === 1, 3000)).toBe(true);
  expect(logText()).not.toContain(SUPERVISOR_IDLE_LINE);
});

test("a clean stop (0) or a locked state (75) is not restarted; SIGUSR1 starts it again, with no child meanwhile", async () => {
  start("0");
  expect(await until(() => logText().includes(`${SUPERVISOR_IDLE_LINE}the daemon stopped (status 0)`))).toBe(true);
  await Bun.sleep(100);
  expect(starts()).toBe(1);
  expect(children()).toEqual([]); // waiting in open(2) of its FIFO: nothing to outlive it
  writeFileSync(`${dir}/do`, "75\n");
  process.kill(sup!.pid, "SIGUSR1");
  expect(await until(() => logText().includes("(status 75)"))).toBe(true);
  expect(starts()).toBe(2);
  writeFileSync(`${dir}/do`, "sleep\n");
  process.kill(sup!.pid, "SIGUSR1");
  expect(await until(() => starts() === 3 && children().length === 1)).toBe(true);
});

test("three failures right at start: it stops retrying, says why, and waits for SIGUSR1", async () => {
  start("1");
  expect(await until(() => logText().includes(`${SUPERVISOR_IDLE_LINE}the daemon failed (status 1) three times at start`))).toBe(true);
  await Bun.sleep(100);
  expect(starts()).toBe(3);
  writeFileSync(`${dir}/do`, "sleep\n");
  process.kill(sup!.pid, "SIGUSR1");
  expect(await until(() => starts() === 4 && children().length === 1)).toBe(true);
});

test("a holder whose first daemon finds the state locked (75) exits: another holder's daemon serves the state", async () => {
  start("75");
  expect(await sup!.exited).toBe(0);
  expect(starts()).toBe(1);
  expect(logText()).toContain(`${SUPERVISOR_IDLE_LINE}another daemon is active for this state (status 75)`);
});

test("a logout's SIGHUP does not end the supervisor or its daemon", async () => {
  start("sleep");
  expect(await until(() => starts() === 1 && children().length === 1)).toBe(true);
  const [daemon] = children();
  process.kill(sup!.pid, "SIGHUP");
  await Bun.sleep(100);
  expect(sup!.exitCode).toBeNull();
  expect(children()).toEqual([daemon!]);
});

describe("rootful (exits when its daemon stops)", () => {
  const exited = () => sup!.exited.then(() => true);

  test("a daemon killed by a signal is started again at once", async () => {
    start("sleep", { exitOnStop: true });
    expect(await until(() => starts() === 1 && children().length === 1)).toBe(true);
    const [first] = children();
    process.kill(first!, "SIGKILL");
    expect(await until(() => starts() === 2 && children().length === 1 && children()[0] !== first)).toBe(true);
    expect(sup!.exitCode).toBeNull();
  });

  test("a clean stop (0) or a locked state (75): the supervisor exits, restarting nothing", async () => {
    for (const status of ["0", "75"]) {
      rmSync(`${dir}/starts`, { force: true });
      start(status, { exitOnStop: true });
      expect(await Promise.race([exited(), Bun.sleep(5000).then(() => false)])).toBe(true);
      expect(sup!.exitCode).toBe(0);
      expect(starts()).toBe(1);
      expect(logText()).toContain(`${SUPERVISOR_IDLE_LINE}the daemon stopped (status ${status}); the supervisor exits`);
    }
  });

  test("three failures right at start: it says why and exits", async () => {
    start("1", { exitOnStop: true });
    expect(await Promise.race([exited(), Bun.sleep(5000).then(() => false)])).toBe(true);
    expect(starts()).toBe(3);
    expect(logText()).toContain(`${SUPERVISOR_IDLE_LINE}the daemon failed (status 1) three times at start`);
  });

  test("SIGTERM to the supervisor stops its daemon cleanly and ends both; nothing is restarted", async () => {
    // A daemon that stops cleanly (exit 0) on SIGTERM, as burrow's does.
    writeFileSync(`${dir}/do`, "term\n");
    const daemon = `echo start >>"$0/starts"; trap 'echo term >>"$0/starts"; exit 0' TERM; while :; do sleep 0.05; done`;
    sup = Bun.spawn(["/bin/sh", "-c", 'eval "$BURROW_SUPERVISOR"', "supervise", "/bin/sh", "-c", daemon, dir], {
      env: { PATH: "/usr/bin:/bin", ...supervisorEnv(`${dir}/daemon.log`, { exitOnStop: true }) },
      stdio: ["ignore", "ignore", "ignore"],
    });
    expect(await until(() => starts() === 1 && children().length === 1)).toBe(true);
    const [child] = children();
    process.kill(sup.pid, "SIGTERM");
    expect(await Promise.race([exited(), Bun.sleep(5000).then(() => false)])).toBe(true);
    expect(sup.exitCode).toBe(0);
    expect(readFileSync(`${dir}/starts`, "utf8")).toBe("start\nterm\n");
    expect(existsSync(`/proc/${child}/stat`) && !readFileSync(`/proc/${child}/stat`, "utf8").includes(") Z ")).toBe(false);
  });

  test("the holder's supervisor is unchanged: SIGTERM ends the shell alone", async () => {
    start("sleep");
    expect(await until(() => starts() === 1 && children().length === 1)).toBe(true);
    process.kill(sup!.pid, "SIGTERM");
    expect(await Promise.race([exited(), Bun.sleep(5000).then(() => false)])).toBe(true);
    expect(sup!.signalCode).toBe("SIGTERM");
  });
});
