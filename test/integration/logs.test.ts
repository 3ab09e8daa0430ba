// `burrow logs` (issue 19 item 6): all of a log through a pipe, a file or a
// non-blocking stdout; the size cap that keeps the newest output while the
// daemon stays responsive and a `yes` loop is slowed, not stopped; output
// that survives a daemon kill -9; podman's --tail, -f, --since, --until and
// -t; logs of a row made by an older burrow (a plain file). dist/burrow as
// the test user (and rootful where said); every test ends with the leak check.
import { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chownSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { burrowBin, integrationUnavailable, testUser } from "../helpers/env.ts";
import { until } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping logs tests: ${why}`);

const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z /;

function logDir(t: BurrowContext, id: string): string {
  return `${t.dirs.stateDir}/sandboxes/${id}`;
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

/** A containers.conf with this log bound, readable by the test user. */
function capConf(t: BurrowContext, bytes: number): Record<string, string> {
  const conf = `${t.dirs.root}/containers.conf`;
  writeFileSync(conf, `[containers]\nlog_size_max = ${bytes}\n`);
  chownSync(conf, testUser().uid, testUser().gid);
  return { CONTAINERS_CONF: conf };
}

for (const mode of ["rootless", "rootful"] as const)
  describe.skipIf(!!why)(`logs (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(() => t.dispose());

    test("200000 bytes of output come out whole through a slow pipe, into a file and into a non-blocking pipe", async () => {
      await t.burrowOk(["run", "-d", "--network", "none", "--name", "big", "--", "sh", "-c", 'head -c 200000 /dev/zero | tr "\\0" y']);
      expect((await t.burrowOk(["wait", "big"])).trim()).toBe("0");
      const bin = burrowBin();
      // The reader starts late: the pipe is full long before (Bun.write's sendfile failed there with EAGAIN at 64 KiB).
      const piped = await t.run(["sh", "-c", `"${bin}" logs big | (sleep 0.3; wc -c)`]);
      expect(piped.stderr).toBe("");
      expect(piped.stdout.trim()).toBe("200000");
      const file = `${t.dirs.root}/out`;
      const toFile = await t.run(["sh", "-c", `"${bin}" logs big > ${file}`]);
      expect(toFile.code).toBe(0);
      expect(statSync(file).size).toBe(200000);
      // A stdout a shell left O_NONBLOCK (the same open file as a terminal's).
      const nonBlocking = await t.run([
        "python3",
        "-c",
        `import os,fcntl,subprocess,time
r,w=os.pipe()
fcntl.fcntl(w,fcntl.F_SETFL,fcntl.fcntl(w,fcntl.F_GETFL)|os.O_NONBLOCK)
p=subprocess.Popen(["${bin}","logs","big"],stdout=w)
os.close(w)
time.sleep(0.3)
n=0
while True:
  b=os.read(r,65536)
  if not b: break
  n+=len(b)
print(n,p.wait())`,
      ]);
      expect(nonBlocking.stdout.trim()).toBe("200000 0");
      await t.burrowOk(["rm", "big"]);
    }, 60000);

    test("the log stays under log_size_max and keeps the newest output", async () => {
      const env = capConf(t, 256 * 1024);
      const id = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "seq", "--", "seq", "1", "100000"], { env })).trim();
      expect((await t.burrowOk(["wait", "seq"])).trim()).toBe("0");
      const dir = logDir(t, id);
      const size = statSync(`${dir}/ctr.log`).size + (existsSync(`${dir}/ctr.log.1`) ? statSync(`${dir}/ctr.log.1`).size : 0);
      expect(size).toBeLessThanOrEqual(256 * 1024);
      expect(existsSync(`${dir}/ctr.log.1`)).toBe(true);
      const lines = (await t.burrowOk(["logs", "seq"])).trimEnd().split("\n").map(Number);
      // The newest: the last line, and an unbroken run of lines up to it (at least the newest half of the bound).
      expect(lines.at(-1)).toBe(100000);
      expect(lines[0]).toBeGreaterThan(1);
      expect(lines.every((n, i) => i === 0 || n === lines[i - 1]! + 1)).toBe(true);
      // At least the newest half of the bound, less the room kept to end a line (src/daemon/log-copy.ts).
      expect(size).toBeGreaterThan(128 * 1024 - 2 * (8192 + 64));
      await t.burrowOk(["rm", "seq"]);
    }, 60000);

    test("a yes loop: the log stays bounded, the daemon answers and costs little, yes is slowed but runs, and a daemon kill -9 loses neither", async () => {
      const env = capConf(t, 1024 * 1024);
      const id = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "yes", "--", "yes"], { env })).trim();
      const dir = logDir(t, id);
      await until(() => existsSync(`${dir}/ctr.log.1`), 10000, "a rotation");
      const [daemon] = daemonPids(t);
      const ticks0 = cpuTicks(daemon!);
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) {
        const start = performance.now();
        expect(JSON.parse(await t.burrowOk(["ps", "--format", "json"], { env }))).toHaveLength(1);
        // A CLI start and one request: well under a second on an idle machine; a starved daemon took seconds.
        expect(performance.now() - start).toBeLessThan(2000);
        const total = statSync(`${dir}/ctr.log`, { throwIfNoEntry: false })?.size ?? 0;
        const older = statSync(`${dir}/ctr.log.1`, { throwIfNoEntry: false })?.size ?? 0;
        expect(total + older).toBeLessThanOrEqual(1024 * 1024);
        await Bun.sleep(300);
      }
      const cores = (cpuTicks(daemon!) - ticks0) / 100 / ((performance.now() - t0) / 1000);
      console.log(`daemon CPU with a yes sandbox: ${(cores * 100).toFixed(0)} % of a core`);
      expect(cores).toBeLessThan(0.5);
      const yesPid = JSON.parse(await t.burrowOk(["inspect", "yes"], { env }))[0].State.Pid as number;
      // The newest output is in the log: a line written in the last second.
      const last = (await t.burrowOk(["logs", "-t", "--tail", "1", "yes"], { env })).trim();
      expect(last).toMatch(STAMP);
      expect(Date.now() - Date.parse(last.split(" ")[0]!)).toBeLessThan(1500);
      // kill -9 of the daemon: yes keeps running (its pipe has a reader: its own
      // end), and the next daemon goes on copying.
      process.kill(daemon!, "SIGKILL");
      await until(() => daemonPids(t).length === 1 && daemonPids(t)[0] !== daemon, 10000, "the daemon restarted");
      const after = Date.now();
      await until(
        async () => {
          const line = (await t.burrowOk(["logs", "-t", "--tail", "1", "yes"], { env })).trim();
          return Date.parse(line.split(" ")[0]!) > after;
        },
        10000,
        "output written after the restart",
      );
      expect(JSON.parse(await t.burrowOk(["inspect", "yes"], { env }))[0].State.Pid).toBe(yesPid);
      await t.burrowOk(["rm", "-f", "yes"], { env });
    }, 60000);
  });

describe.skipIf(!!why)("logs (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(() => t.dispose());

  test("--tail, --timestamps, --since and --until; stderr lines go to stderr", async () => {
    const id = (
      await t.burrowOk(["run", "-d", "--network", "none", "--name", "opts", "--", "sh", "-c", "echo one; echo two >&2; sleep 1.2; echo three; printf four"])
    ).trim();
    expect((await t.burrowOk(["wait", "opts"])).trim()).toBe("0");
    const view = JSON.parse(await t.burrowOk(["inspect", "opts"]))[0];
    expect(view.LogPath).toBe(`${logDir(t, id)}/ctr.log`);
    expect(view.HostConfig.LogConfig).toEqual({ Type: "k8s-file", Path: `${logDir(t, id)}/ctr.log` });
    const all = await t.burrow(["logs", "opts"]);
    expect(all.stdout).toBe("one\nthree\nfour");
    expect(all.stderr).toBe("two\n");
    expect((await t.burrowOk(["logs", "--tail", "2", "opts"])).toString()).toBe("three\nfour");
    expect(await t.burrowOk(["logs", "--tail", "0", "opts"])).toBe("");
    expect(await t.burrowOk(["logs", "--tail=-1", "opts"])).toBe("one\nthree\nfour");
    const stamped = (await t.burrowOk(["logs", "-t", "opts"])).split("\n");
    expect(stamped).toHaveLength(3);
    for (const line of stamped) expect(line).toMatch(STAMP);
    expect(stamped.map((l) => l.replace(STAMP, ""))).toEqual(["one", "three", "four"]);
    const [tOne, tThree] = [stamped[0]!.split(" ")[0]!, stamped[1]!.split(" ")[0]!];
    expect(Date.parse(tThree) - Date.parse(tOne)).toBeGreaterThanOrEqual(1000);
    expect(await t.burrowOk(["logs", "--since", tThree, "opts"])).toBe("three\nfour");
    const before = new Date(Date.parse(tOne) + 500).toISOString();
    const early = await t.burrow(["logs", "--until", before, "opts"]);
    expect(early.stdout).toBe("one\n");
    expect(early.stderr).toBe("two\n");
    // --tail counts the lines left by --since/--until, both streams
    const window = await t.burrow(["logs", "--since", "1h", "--until", before, "--tail", "1", "opts"]);
    expect(window.stdout).toBe("");
    expect(window.stderr).toBe("two\n");
    for (const [args, msg] of [
      [["--tail", "x"], `invalid --tail "x": give a number of lines, or -1 for all`],
      [["--since", "yesterday"], `invalid --since "yesterday"`],
    ] as const) {
      const r = await t.burrow(["logs", ...args, "opts"]);
      expect(r.code).toBe(125);
      expect(r.stderr).toContain(msg);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    await t.burrowOk(["rm", "opts"]);
  }, 30000);

  test("what a paced command left in its pipe is in the log when wait returns", async () => {
    // 1,000,000 lines: ~44 MiB of log, well past the copy's 16 MiB burst, so
    // the command ends with its pipe full and the rest is copied at its exit.
    await t.burrowOk(["run", "-d", "--network", "none", "--name", "paced", "--", "seq", "1", "1000000"]);
    expect((await t.burrowOk(["wait", "paced"], { timeoutMs: 30000 })).trim()).toBe("0");
    expect(await t.burrowOk(["logs", "--tail", "1", "paced"])).toBe("1000000\n");
    await t.burrowOk(["rm", "paced"]);
  }, 40000);

  /**
   * A sandbox that prints `first`, waits for a gate file, then prints
   * `second`; and `logs -f` of it, read until `first` shows. `open()` lets the
   * sandbox go on; `rest()` reads -f to its end and returns all it printed.
   */
  async function gatedFollow(name: string, first: string, second: string) {
    const gate = `${t.dirs.root}/gate-${name}`;
    await t.burrowOk([
      "run",
      "-d",
      "--network",
      "none",
      "--name",
      name,
      "--",
      "sh",
      "-c",
      `echo ${first}; while [ ! -e ${gate} ]; do sleep 0.05; done; echo ${second}`,
    ]);
    const follow = t.spawnBurrow(["logs", "-f", name]);
    const reader = (follow.stdout as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let seen = "";
    const read = async (until?: string) => {
      while (until === undefined || !seen.includes(until)) {
        const { value, done } = await reader.read();
        if (done) return;
        seen += decoder.decode(value);
      }
    };
    await read(`${first}\n`);
    return {
      follow,
      seen: () => seen,
      open: () => writeFileSync(gate, ""),
      async rest() {
        await read();
        return seen;
      },
    };
  }

  test("-f prints output as it comes and ends when the sandbox ends", async () => {
    const f = await gatedFollow("fol", "first", "second");
    expect(f.seen()).toBe("first\n");
    // Still following: the sandbox runs.
    expect(f.follow.exitCode).toBeNull();
    f.open();
    expect(await f.rest()).toBe("first\nsecond\n");
    expect(await f.follow.exited).toBe(0);
    // -f of an exited sandbox prints and ends at once.
    expect(await t.burrowOk(["logs", "-f", "fol"])).toBe("first\nsecond\n");
    await t.burrowOk(["rm", "fol"]);
  }, 30000);

  test("-f goes on through a daemon kill -9: output written after the restart is printed, and it ends with the sandbox", async () => {
    const f = await gatedFollow("fk", "before", "after");
    const [daemon] = daemonPids(t);
    process.kill(daemon!, "SIGKILL");
    await until(() => daemonPids(t).length === 1 && daemonPids(t)[0] !== daemon, 10000, "the daemon restarted");
    // Answering means it has read the pipes again (output a command leaves while no daemon reads is lost if it exits first).
    await t.burrowOk(["ps"]);
    f.open();
    expect(await f.rest()).toBe("before\nafter\n");
    expect(await f.follow.exited).toBe(0);
    await t.burrowOk(["rm", "fk"]);
  }, 30000);

  test("a sandbox of an older burrow keeps its plain log: printed as is, --tail and -f work, times are refused in one line", async () => {
    const id = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "old", "--", "sh", "-c", "echo new"])).trim();
    expect((await t.burrowOk(["wait", "old"])).trim()).toBe("0");
    // What an earlier build left: a plain `log` the command wrote, named by the row.
    const plain = `${logDir(t, id)}/log`;
    writeFileSync(plain, "a\nb\nc");
    chownSync(plain, testUser().uid, testUser().gid);
    const db = new Database(`${t.dirs.stateDir}/state.db`);
    const row = db.query("SELECT runtime FROM sandboxes WHERE id = ?").get(id) as { runtime: string };
    db.run("UPDATE sandboxes SET runtime = ? WHERE id = ?", [JSON.stringify({ ...JSON.parse(row.runtime), log: plain }), id]);
    db.close();
    expect(await t.burrowOk(["logs", "old"])).toBe("a\nb\nc");
    expect(await t.burrowOk(["logs", "--tail", "1", "old"])).toBe("c");
    expect(await t.burrowOk(["logs", "-f", "old"])).toBe("a\nb\nc");
    const r = await t.burrow(["logs", "-t", "old"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("written by an older burrow, without times");
    // start appends to the same plain file, as that version did
    await t.burrowOk(["start", "old"]);
    expect((await t.burrowOk(["wait", "old"])).trim()).toBe("0");
    expect(readFileSync(plain, "utf8")).toBe("a\nb\ncnew\n");
    await t.burrowOk(["rm", "old"]);
  }, 30000);
});
