// killAll/terminate (src/sys/processes.ts) find a sandbox's processes by the
// inode of its mount namespace. That number names the namespace only while
// it lives: the kernel hands a freed one to the next namespace made. So with
// a pin they act only while the pin still holds that namespace, and hold it
// open while they look. Real processes in a real mount namespace (root).
import { afterEach, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { cleanEnv } from "../../src/sys/env.ts";
import { killAll, killOtherSession, pidCounter, pidsInMountNs, terminate } from "../../src/sys/processes.ts";
import { describeWhen, needsRoot } from "../helpers/requirements.ts";
import { until } from "../helpers/until.ts";

let child: Bun.Subprocess | undefined;

/**
 * A `sleep` in a mount namespace of its own (and, with `userAndUts`, a user
 * and UTS namespace of its own too: like a sandbox of another session);
 * returns its pid and its namespaces' inodes.
 */
async function sleeperInOwnMountNs(userAndUts = false, command = ["sleep", "300"]): Promise<{ pid: number; ino: number; uts: number }> {
  const flags = userAndUts ? ["--user", "--map-root-user", "--uts"] : [];
  child = Bun.spawn(["unshare", ...flags, "--mount", "--propagation", "private", ...command], { env: cleanEnv(), stdio: ["ignore", "ignore", "inherit"] });
  const pid = child.pid;
  const own = statSync("/proc/self/ns/mnt").ino;
  // unshare(1) execs sleep once the namespace is made.
  const ino = await until(() => {
    const i = statSync(`/proc/${pid}/ns/mnt`).ino;
    return i !== own ? i : null;
  });
  return { pid, ino, uts: statSync(`/proc/${pid}/ns/uts`).ino };
}

afterEach(async () => {
  child?.kill("SIGKILL");
  await child?.exited;
  child = undefined;
});

describeWhen(needsRoot())("killing by mount namespace", () => {
  test("with a pin that does not hold the namespace (released: the inode may be another's), nothing is signalled", async () => {
    const { pid, ino } = await sleeperInOwnMountNs();
    await killAll(ino, "/nonexistent/pin/mnt");
    await killAll(ino, "/etc/hostname"); // a file of another inode: a pin left unmounted
    await terminate(ino, 100, "/nonexistent/pin/mnt");
    expect(pidsInMountNs(ino)).toEqual([pid]);
    expect(child!.exitCode).toBeNull();
  });

  test("with a pin that holds it, every process in it is killed", async () => {
    const { pid, ino } = await sleeperInOwnMountNs();
    expect(pidsInMountNs(ino)).toEqual([pid]);
    // /proc/PID/ns/mnt stands in for the sandbox's bind-mounted pin: same inode, and opening it holds the namespace.
    await killAll(ino, `/proc/${pid}/ns/mnt`);
    expect(await child!.exited).not.toBe(0);
    expect(pidsInMountNs(ino)).toEqual([]);
  });

  test("with the pid counter taken before its processes came, every one made since is found and killed, children too", async () => {
    const mark = pidCounter()!;
    expect(mark).not.toBeNull();
    const { pid, ino } = await sleeperInOwnMountNs(false, ["sh", "-c", "sleep 300 & sleep 300 & wait"]);
    await until(() => pidsInMountNs(ino).length === 3);
    await killAll(ino, `/proc/${pid}/ns/mnt`, { mark, known: [] });
    expect(await child!.exited).not.toBe(0);
    // The whole of /proc agrees: nothing is left.
    await until(() => pidsInMountNs(ino).length === 0);
  });

  test("a process older than the counter is looked at only when it is known (a run's command, started ahead)", async () => {
    const { pid, ino } = await sleeperInOwnMountNs();
    const mark = pidCounter()!;
    await killAll(ino, `/proc/${pid}/ns/mnt`, { mark, known: [] });
    expect(pidsInMountNs(ino)).toEqual([pid]);
    expect(child!.exitCode).toBeNull();
    await killAll(ino, `/proc/${pid}/ns/mnt`, { mark, known: [pid] });
    expect(await child!.exited).not.toBe(0);
    expect(pidsInMountNs(ino)).toEqual([]);
  });

  test("a dead session's leftovers (no pin): only processes outside our user namespace with both inodes are killed", async () => {
    // In our own user namespace: what the mount namespace number may name
    // now is this session's (its new holder's), never a dead session's.
    const mine = await sleeperInOwnMountNs();
    await killOtherSession({ mnt: mine.ino, uts: mine.uts });
    expect(pidsInMountNs(mine.ino)).toEqual([mine.pid]);
    child!.kill("SIGKILL");
    await child!.exited;
    // Another user namespace, but the UTS number differs: not that sandbox.
    const other = await sleeperInOwnMountNs(true);
    await killOtherSession({ mnt: other.ino, uts: other.uts + 1 });
    expect(pidsInMountNs(other.ino)).toEqual([other.pid]);
    await killOtherSession({ mnt: other.ino, uts: other.uts });
    expect(await child!.exited).not.toBe(0);
    expect(pidsInMountNs(other.ino)).toEqual([]);
  });

  test("terminate with a holding pin sends SIGTERM first", async () => {
    const { pid, ino } = await sleeperInOwnMountNs();
    await terminate(ino, 2000, `/proc/${pid}/ns/mnt`);
    await child!.exited;
    expect(child!.signalCode).toBe("SIGTERM");
  });
});
