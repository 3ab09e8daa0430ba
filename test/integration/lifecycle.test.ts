// Sandbox lifecycle end to end: dist/burrow as the unprivileged test user
// (rootless) and as root inside a test-made netns (rootful).
import { afterEach, beforeEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { readFileSync, readlinkSync, existsSync, readdirSync } from "node:fs";
import { burrowContext, type BurrowContext, daemonPidsOf as daemonPids } from "../helpers/context.ts";
import { integrationUnavailable, testUser } from "../helpers/env.ts";
import { until } from "../helpers/until.ts";
import { freePort } from "../helpers/sys.ts";
import { describeWhen } from "../helpers/requirements.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping lifecycle integration tests: ${why}`);

for (const mode of ["rootless", "rootful"] as const) {
  describeWhen(why)(`lifecycle (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("run in the foreground: own hostname and netns, loopback up, stdio and exit status pass through", async () => {
      const hostNet = mode === "rootless" ? readlinkSync("/proc/self/ns/net") : readlinkSync(t.netns!.path.replace(/.*/, `/proc/self/ns/net`));
      const r = await t.burrow([
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        "fg1",
        "--hostname",
        "sandy",
        "--",
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/net; ip -o link show lo; cat /etc/hosts; echo err >&2; exit 3",
      ]);
      expect(r.code).toBe(3);
      const lines = r.stdout.split("\n");
      expect(lines[0]).toBe("sandy");
      expect(lines[1]).toMatch(/^net:\[\d+\]$/);
      expect(lines[1]).not.toBe(hostNet);
      expect(lines[2]).toContain("UP");
      expect(r.stdout).toMatch(/127\.0\.1\.1\s+sandy fg1/);
      expect(r.stderr).toBe("err\n");
      // --rm: nothing is listed afterwards
      const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
      expect(ps).toEqual([]);
    });

    test("without --rm the exited sandbox stays listed with its exit code until rm", async () => {
      const r = await t.burrow(["run", "--network", "none", "--name", "keep", "--", "sh", "-c", "exit 7"]);
      expect(r.code).toBe(7);
      const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
      expect(ps).toHaveLength(1);
      expect(ps[0].Names).toEqual(["keep"]);
      expect(ps[0].State).toBe("exited");
      expect(ps[0].ExitCode).toBe(7);
      expect(JSON.parse(await t.burrowOk(["ps", "--format", "json"]))).toEqual([]);
      const inspect = JSON.parse(await t.burrowOk(["inspect", "keep"]));
      expect(inspect[0].State.Status).toBe("exited");
      expect(inspect[0].State.ExitCode).toBe(7);
      expect(inspect[0].NetworkSettings.SandboxKey).toBe("");
      const rm = await t.burrowOk(["rm", "keep"]);
      expect(rm.trim()).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    });

    test("run --rm returns before its release ends, and nobody sees the rest: the same name at once, ps -a at once, on none, slirp4netns and a bridge", async () => {
      // The exit's reply goes out before the pins, directories and row are
      // removed (issue 17): a create of the same name waits for that, and
      // ps waits for every release. A process left behind in the sandbox
      // is killed before the reply.
      // A bridge network's release (its CNI DEL, ~50-130 ms) outlasts the
      // start of the next CLI: the rounds there meet a release under way.
      await t.burrowOk(["network", "create", "racenet"]);
      const networks = mode === "rootless" ? ["none", "slirp4netns", "racenet"] : ["none", "racenet"];
      for (const network of networks) {
        for (let i = 0; i < (network === "racenet" ? 4 : 10); i++) {
          const first = await t.burrow(["run", "--rm", "--network", network, "--name", "again", "--", "sh", "-c", "sleep 60 & exit 0"]);
          expect({ network, i, code: first.code, stderr: first.stderr }).toEqual({ network, i, code: 0, stderr: "" });
          const [second, ps] = await Promise.all([
            t.burrow(["run", "--rm", "--network", network, "--name", "again", "--", "true"]),
            t.burrowOk(["ps", "-a", "--format", "json"]),
          ]);
          expect({ network, i, code: second.code, stderr: second.stderr }).toEqual({ network, i, code: 0, stderr: "" });
          // ps saw no sandbox, or the second one whole (created or running), never the first half-released.
          const seen = JSON.parse(ps) as Array<{ Names: string[]; State: string }>;
          for (const s of seen) expect({ network, i, state: s.State }).not.toEqual({ network, i, state: "exited" });
          expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
        }
      }
      // The events of a kept foreground run stay in order whichever report comes first.
      expect((await t.burrow(["run", "--network", "none", "--name", "kept", "--", "true"])).code).toBe(0);
      const events = (await t.burrowOk(["events", "--stream=false", "--format", "json"]))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { name: string; type: string });
      expect(events.filter((e) => e.name === "kept").map((e) => e.type)).toEqual(["create", "start", "died"]);
      await t.burrowOk(["rm", "kept"]);
      await t.burrowOk(["network", "rm", "racenet"]);
    });

    test("a run whose command made no process ends without the exit report's answer; the next command sees the exit all the same, and one that left a process waits for it to be killed", async () => {
      // src/cli/run.ts: with nothing on the host and no process made by the
      // command, the CLI does not wait for the exit report's answer; the
      // daemon serves no later request before it has taken the report in.
      const debug = { env: { BURROW_LOG: "debug" } };
      let unanswered = 0;
      for (let i = 0; i < 10; i++) {
        const r = await t.burrow(["run", "--rm", "--network", "none", "--name", "quick", "--", "true"], debug);
        expect({ i, code: r.code }).toEqual({ i, code: 0 });
        if (r.stderr.includes("exit of quick reported, its answer not waited for")) unanswered++;
        // At once: the name is free, and nothing is listed.
        const again = await t.burrow(["run", "--rm", "--network", "none", "--name", "quick", "--", "sh", "-c", "exit 4"]);
        expect({ i, code: again.code, stderr: again.stderr }).toEqual({ i, code: 4, stderr: "" });
        expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
        // A kept sandbox shows its exit code at once.
        expect((await t.burrow(["run", "--network", "none", "--name", "kept", "--", "sh", "-c", "exit 6"])).code).toBe(6);
        const inspect = JSON.parse(await t.burrowOk(["inspect", "kept"]));
        expect({ i, status: inspect[0].State.Status, code: inspect[0].State.ExitCode }).toEqual({ i, status: "exited", code: 6 });
        await t.burrowOk(["rm", "kept"]);
      }
      // Ten runs of `true` with nothing else making processes on this machine meanwhile: most go without the answer.
      expect(unanswered).toBeGreaterThan(0);
      // A command that left a process: the CLI waits, and the process is gone when run returns.
      const left = await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", "sleep 60 & echo $!"], debug);
      expect(left.code).toBe(0);
      expect(left.stderr).not.toContain("its answer not waited for");
      const sleeper = Number(left.stdout.trim());
      expect(sleeper).toBeGreaterThan(0);
      const state = existsSync(`/proc/${sleeper}/stat`) ? (readFileSync(`/proc/${sleeper}/stat`, "utf8").replace(/^.*\) /, "")[0] ?? "?") : "gone";
      expect(["gone", "Z", "X"]).toContain(state);
    });

    test("a sandbox with published ports is released once: at its exit, not again by --rm's removal or by rm", async () => {
      // The daemon starts with this command: debug logs its one "release NAME:" line per release.
      const debug = { env: { BURROW_LOG: "debug" } };
      const r = await t.burrow(["run", "--rm", "--name", "relrm", "-p", `${await freePort()}:80`, "--", "true"], debug);
      expect({ code: r.code, stderr: r.stderr.replace(/^\[burrow\] ⚙ .*\n/gm, "") }).toEqual({ code: 0, stderr: "" });
      await t.burrowOk(["run", "-d", "--name", "relkept", "-p", `${await freePort()}:80`, "--", "sleep", "60"], debug);
      await t.burrowOk(["stop", "-t", "0", "relkept"], debug);
      await t.burrowOk(["rm", "relkept"], debug);
      // ps waits for every release under way.
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      const log = readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8");
      expect({ relrm: log.match(/release relrm:/g)?.length, relkept: log.match(/release relkept:/g)?.length }).toEqual({ relrm: 1, relkept: 1 });
    });

    test("detached: logs, exec, ps, inspect, id prefixes, stop, rm", async () => {
      const id = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "bg", "--", "sh", "-c", "echo started; hostname; exec sleep 300"])).trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect(await until(async () => (await t.burrowOk(["logs", "bg"])).includes("started"))).toBe(true);
      expect(await t.burrowOk(["logs", id.slice(0, 8)])).toBe("started\nbg\n");
      const ex = await t.burrow(["exec", "bg", "--", "sh", "-c", "hostname; readlink /proc/1/ns/net >/dev/null; exit 5"]);
      expect(ex.stdout).toBe("bg\n");
      expect(ex.code).toBe(5);
      // exec joins the same netns as the sandbox's main process
      const ps = JSON.parse(await t.burrowOk(["ps", "--format", "json"]));
      expect(ps).toHaveLength(1);
      expect(ps[0].Id).toBe(id);
      expect(ps[0].State).toBe("running");
      const mainNet = readlinkSync(`/proc/${ps[0].Pid}/ns/net`);
      const execNet = (await t.burrowOk(["exec", "bg", "--", "readlink", "/proc/self/ns/net"])).trim();
      expect(execNet).toBe(mainNet);
      const ins = JSON.parse(await t.burrowOk(["inspect", id.slice(0, 12)]))[0];
      expect(ins.Id).toBe(id);
      expect(ins.Name).toBe("bg");
      expect(ins.State.Running).toBe(true);
      expect(ins.State.Pid).toBe(ps[0].Pid);
      expect(ins.NetworkSettings.SandboxKey).toContain(id);
      expect(await t.burrowOk(["inspect", "--format", "{{.State.Status}} {{.Config.Hostname}}", "bg"])).toBe("running bg\n");
      const stop = await t.burrow(["stop", "-t", "2", "bg"]);
      expect(stop.code).toBe(0);
      const after = JSON.parse(await t.burrowOk(["inspect", "bg"]))[0];
      expect(after.State.Status).toBe("exited");
      expect(after.State.ExitCode).toBe(143);
      expect(existsSync(`/proc/${ps[0].Pid}`) && !readFileSync(`/proc/${ps[0].Pid}/stat`, "utf8").includes(") Z")).toBe(false);
      await t.burrowOk(["rm", "bg"]);
    });

    test("when a foreground run returns, what is left in its sandbox is dead: its command's children and an exec's command", async () => {
      /** Alive (not a zombie) and still in that mount namespace. */
      const inside = (pid: number, mnt: string) => {
        try {
          return readlinkSync(`/proc/${pid}/ns/mnt`) === mnt && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z");
        } catch {
          return false;
        }
      };
      const run = t.spawnBurrow(
        [
          "run",
          "--rm",
          "-i",
          "--network",
          "none",
          "--name",
          "leaves",
          "--",
          "sh",
          "-c",
          "sleep 300 & echo $!; sleep 300 & echo $!; readlink /proc/self/ns/mnt; read x; exit 0",
        ],
        { stdin: "pipe" },
      );
      const reader = (run.stdout as ReadableStream<Uint8Array>).getReader();
      let out = "";
      while (out.split("\n").length < 4) out += Buffer.from((await reader.read()).value!).toString();
      const [a, b, mnt] = out.trim().split("\n");
      const children = [Number(a), Number(b)];
      // An exec'd command in the same sandbox, started after the run's.
      const exec = t.spawnBurrow(["exec", "leaves", "--", "sh", "-c", "echo $$; exec sleep 300"]);
      const execPid = Number(
        Buffer.from((await (exec.stdout as ReadableStream<Uint8Array>).getReader().read()).value!)
          .toString()
          .trim(),
      );
      for (const pid of [...children, execPid]) expect(inside(pid, mnt!)).toBe(true);
      // The run's command ends (its stdin closes): at once after the run returns, none of them is alive in there.
      (run.stdin as import("bun").FileSink).end();
      expect(await run.exited).toBe(0);
      expect([...children, execPid].filter((pid) => inside(pid, mnt!))).toEqual([]);
      expect(await exec.exited).toBe(137);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    });

    test("rm -f kills a running sandbox's processes; plain rm refuses", async () => {
      await t.burrowOk(["run", "-d", "--network", "none", "--name", "busy", "--", "sh", "-c", "sleep 300 & sleep 300 & wait"]);
      const ps = JSON.parse(await t.burrowOk(["ps", "--format", "json"]));
      const pid = ps[0].Pid;
      const refused = await t.burrow(["rm", "busy"]);
      expect(refused.code).toBe(125);
      expect(refused.stderr).toContain("busy is running");
      await t.burrowOk(["rm", "-f", "busy"]);
      expect(await until(() => !existsSync(`/proc/${pid}/ns`))).toBe(true);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    });

    test("bad input: one line, exit 125, nothing left behind", async () => {
      const cases: Array<[string[], RegExp]> = [
        [["run", "--bogus", "--", "true"], /unknown flag --bogus/],
        [["run", "--network", "wormhole:x", "--", "true"], /unknown network mode "wormhole:x": valid modes are none, host/],
        [["run", "--network", "none"], /needs a command/],
        [["inspect", "nosuch"], /no sandbox with name or id "nosuch"/],
        [["rm", "nosuch"], /no sandbox with name or id "nosuch"/],
        [["frobnicate"], /unknown command "frobnicate"/],
        [["network", "frob"], /unknown command "network frob": valid ones are create, ls/],
        [["run", "--network", "container:nosuch", "--", "true"], /no sandbox with name or id "nosuch"/],
        [["run", "--network", "none", "--ip", "10.0.0.5", "--", "true"], /--ip 10.0.0.5 can only be used with bridge networks/],
        [["run", "--network", "none", "--network-alias", "web", "--", "true"], /--network-alias web can only be used with bridge networks/],
      ];
      for (const [args, msg] of cases) {
        const r = await t.burrow(args);
        expect(r.code).toBe(125);
        expect(r.stderr).toMatch(msg);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
      }
      const json = await t.burrow(["inspect", "--format", "json", "nosuch"]);
      expect(json.code).toBe(125);
      expect(JSON.parse(json.stdout).error).toContain("nosuch");
    });

    test("name conflicts are refused and leave the first sandbox alone", async () => {
      await t.burrowOk(["run", "-d", "--network", "none", "--name", "dup", "--", "sleep", "300"]);
      const r = await t.burrow(["run", "--network", "none", "--name", "dup", "--", "true"]);
      expect(r.code).toBe(125);
      expect(r.stderr).toContain(`the sandbox name "dup" is already in use`);
      const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
      expect(ps).toHaveLength(1);
      expect(ps[0].State).toBe("running");
      await t.burrowOk(["rm", "-f", "dup"]);
    });

    test("a command that cannot be run exits 127 (not found) or 126 (not executable)", async () => {
      const nf = await t.burrow(["run", "--rm", "--network", "none", "--", "/no/such/program"]);
      expect(nf.code).toBe(127);
      expect(nf.stderr).toContain("/no/such/program");
      const ne = await t.burrow(["run", "--rm", "--network", "none", "--", "/etc/hostname"]);
      expect(ne.code).toBe(126);
      const abrt = await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", "kill -ABRT $$"]);
      expect(abrt.code).toBe(134); // 128 + SIGABRT, like a shell
      const nf2 = await t.burrow(["run", "--rm", "--network", "none", "--", "no-such-command-xyz"]);
      expect(nf2.code).toBe(127);
      expect(nf2.stderr).toContain("executable file not found in $PATH");
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    });

    test("signals sent to a foreground run reach the command", async () => {
      const p = t.spawnBurrow([
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        "sig",
        "--",
        "sh",
        "-c",
        "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
      ]);
      const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
      const first = await reader.read();
      expect(Buffer.from(first.value!).toString()).toContain("ready");
      p.kill("SIGTERM");
      const code = await p.exited;
      let rest = "";
      for (;;) {
        const c = await reader.read();
        if (c.done) break;
        rest += Buffer.from(c.value).toString();
      }
      expect(rest).toContain("got-term");
      expect(code).toBe(42);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    });

    test("a SIGTERM sent the moment the command first prints is forwarded, never lost (20 runs)", async () => {
      // The enter helper execs the command within a millisecond of the spawn:
      // the CLI must catch the signals before it spawns (it lost 1 in 10 when
      // it set its handlers up after).
      for (let i = 0; i < 20; i++) {
        const p = t.spawnBurrow(["run", "--rm", "--network", "none", "--", "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"]);
        const first = await (p.stdout as ReadableStream<Uint8Array>).getReader().read();
        expect(Buffer.from(first.value!).toString()).toContain("ready");
        p.kill("SIGTERM");
        expect([i, await p.exited]).toEqual([i, 42]);
      }
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    }, 60_000);

    test("container:NAME shares the other sandbox's network namespace", async () => {
      await t.burrowOk(["run", "-d", "--network", "none", "--name", "owner", "--", "sleep", "300"]);
      const ownerNet = (await t.burrowOk(["exec", "owner", "--", "readlink", "/proc/self/ns/net"])).trim();
      const guest = await t.burrowOk([
        "run",
        "--rm",
        "--network",
        "container:owner",
        "--name",
        "guest",
        "--",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; hostname",
      ]);
      expect(guest).toBe(`${ownerNet}\nguest\n`);
      await t.burrowOk(["rm", "-f", "owner"]);
    });

    test("host network mode keeps the host's network namespace", async () => {
      const here = (await t.run(["readlink", "/proc/self/ns/net"])).stdout.trim();
      const inside = (await t.burrowOk(["run", "--rm", "--network", "host", "--", "readlink", "/proc/self/ns/net"])).trim();
      expect(inside).toBe(here);
    });

    test("ten concurrent runs start exactly one daemon", async () => {
      const runs = await Promise.all(Array.from({ length: 10 }, (_, i) => t.burrow(["run", "--rm", "--network", "none", "--name", `c${i}`, "--", "hostname"])));
      for (const [i, r] of runs.entries()) {
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toBe(`c${i}\n`);
      }
      expect(daemonPids(t.dirs.runtimeDir)).toHaveLength(1);
    });

    test("runs given no name: each its own free name as hostname and in its /etc files, at once too; the spare's files do not pile up", async () => {
      // One at a time (each takes the spare the last one left, with the name it set ahead), then four at once.
      const script = 'printf "%s %s %s " "$(hostname)" "$(cat /etc/hostname)" "$(grep -c "$(hostname)" /etc/hosts)"; ls -A /etc/hosts /etc/hostname | wc -l';
      const runs = [];
      for (let i = 0; i < 3; i++) runs.push(await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", script]));
      runs.push(...(await Promise.all(Array.from({ length: 4 }, () => t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", script])))));
      const names = runs.map((r) => {
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const [host, file, inHosts, files] = r.stdout.trim().split(" ");
        expect(host).toMatch(/^[a-z]+_[a-z]+\d+$/);
        expect(file).toBe(host);
        expect(Number(inHosts)).toBeGreaterThan(0);
        expect(files).toBe("2");
        return host;
      });
      expect(new Set(names).size).toBe(names.length);
      // A named run after them keeps its own name as hostname.
      expect(await t.burrowOk(["run", "--rm", "--network", "none", "--name", "named", "--", "cat", "/etc/hostname"])).toBe("named\n");
      // The daemon's next spare holds one set of files (hosts, resolv.conf, hostname) at most; no sandbox dir is left.
      await until(() => readdirSync(`${t.dirs.runtimeDir}/sandboxes`).every((f) => f === ".spare"));
      expect(readdirSync(`${t.dirs.runtimeDir}/sandboxes`).filter((f) => f !== ".spare")).toEqual([]);
      expect(readdirSync(`${t.dirs.runtimeDir}/sandboxes/.spare`).length).toBeLessThanOrEqual(3);
    }, 60_000);

    test("a daemon killed with SIGKILL is restarted by the next command, sandboxes intact", async () => {
      await t.burrowOk(["run", "-d", "--network", "none", "--name", "survivor", "--", "sleep", "300"]);
      const [daemon] = daemonPids(t.dirs.runtimeDir);
      expect(daemon).toBeGreaterThan(0);
      process.kill(daemon!, "SIGKILL");
      expect(await until(() => !daemonPids(t.dirs.runtimeDir).includes(daemon!))).toBe(true);
      const ps = JSON.parse(await t.burrowOk(["ps", "--format", "json"]));
      expect(ps.map((s: { Names: string[] }) => s.Names[0])).toEqual(["survivor"]);
      expect(ps[0].State).toBe("running");
      expect(daemonPids(t.dirs.runtimeDir)).toHaveLength(1);
      expect(await t.burrowOk(["exec", "survivor", "--", "hostname"])).toBe("survivor\n");
      await t.burrowOk(["rm", "-f", "survivor"]);
    });
  });
}

describeWhen(why)("rootless session", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("burrow unshare runs a command as root of the session's user namespace", async () => {
    const out = await t.burrowOk(["unshare", "--", "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    const [uid, map] = out.split("\n");
    expect(uid).toBe("0");
    expect(map!.trim().split(/\s+/)).toEqual(["0", String(testUser().uid), "1"]);
    expect(out).toMatch(/\n\s+1\s+\d+\s+65536\n/);
  });

  test("after a reboot (another boot id in the state) stale sandboxes are marked exited and their pins dropped", async () => {
    await t.burrowOk(["run", "-d", "--network", "none", "--name", "old", "--", "sleep", "300"]);
    const pid = JSON.parse(await t.burrowOk(["ps", "--format", "json"]))[0].Pid;
    // A reboot ends every process: the holder first stopped, so that its
    // supervisor cannot restart the daemon before the state says "another boot".
    const holder = JSON.parse(readFileSync(`${t.dirs.runtimeDir}/holder.json`, "utf8")).pid;
    process.kill(holder, "SIGSTOP");
    for (const d of daemonPids(t.dirs.runtimeDir)) process.kill(d, "SIGKILL");
    process.kill(holder, "SIGKILL");
    process.kill(pid, "SIGKILL");
    expect(await until(() => daemonPids(t.dirs.runtimeDir).length === 0)).toBe(true);
    const db = new Database(`${t.dirs.stateDir}/state.db`);
    db.run("UPDATE sandboxes SET boot_id = 'an-earlier-boot'");
    db.close();
    const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
    expect(ps).toHaveLength(1);
    expect(ps[0].State).toBe("exited");
    expect(JSON.parse(await t.burrowOk(["inspect", "old"]))[0].NetworkSettings.SandboxKey).toBe("");
    await t.burrowOk(["rm", "old"]);
  });

  test("killing the holder ends the session: sandboxes are reported gone and cleaned up", async () => {
    await t.burrowOk(["run", "-d", "--network", "none", "--name", "doomed", "--", "sleep", "300"]);
    const holder = JSON.parse(readFileSync(`${t.dirs.runtimeDir}/holder.json`, "utf8"));
    const sleeper = JSON.parse(await t.burrowOk(["ps", "--format", "json"]))[0].Pid;
    process.kill(holder.pid, "SIGKILL");
    expect(await until(() => !existsSync(`/proc/${sleeper}/ns`), 10000)).toBe(true);
    const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
    expect(ps).toHaveLength(1);
    expect(ps[0].State).toBe("exited");
    // the runtime files of the sandbox are gone; rm leaves no row
    await t.burrowOk(["rm", "doomed"]);
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
  });
});

describeWhen(why)("events and stats (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("events record a sandbox's life in order; stats count its traffic and processes", async () => {
    await t.burrowOk(["run", "-d", "--name", "ev", "--", "sh", "-c", "sleep 300 & wait"]);
    // some traffic on tap0: a DNS query to slirp4netns's resolver
    await t.burrow(["exec", "ev", "--", "sh", "-c", "busybox nslookup -timeout=1 example.invalid 10.0.2.3 >/dev/null 2>&1; true"]);
    const stats = JSON.parse(await t.burrowOk(["stats", "--no-stream", "--format", "json", "ev"]));
    expect(stats).toHaveLength(1);
    expect(stats[0].Name).toBe("ev");
    expect(stats[0].PIDs).toBe(2);
    expect(stats[0].NetOutput).toBeGreaterThan(0);
    expect(stats[0].MemUsage).toBeGreaterThan(0);
    await t.burrowOk(["rm", "-f", "ev"]);
    const events = (await t.burrowOk(["events", "--stream=false", "--format", "json"]))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events.filter((e) => e.name === "ev").map((e) => e.type)).toEqual(["create", "start", "died", "remove"]);
  });
});
