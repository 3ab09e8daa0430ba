// The enter step (issue 17): a foreground run, an exec and a detached run
// start their command through the C helper embedded in the binary
// (src/sandbox/enter-helper.c), and with BURROW_ENTER_HELPER=0 through the
// Bun __enter role; both give the command the same namespaces, capabilities,
// Landlock domain, user and directory. The deeper checks of each (hostile
// probes, -it, --user errors) are isolation.test.ts's and
// process-flags.test.ts's, which run on the helper.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { burrowContext, type BurrowContext, daemonPids } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { procEnv } from "../helpers/leaks.ts";
import { argvOf } from "../helpers/sys.ts";
import { until } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping enter-helper integration tests: ${why}`);

/** podman's default capability set, as /proc/PID/status prints it. */
const DEFAULT_MASK = "00000000800405fb";

/** What the command reports of itself: ids, caps, cwd, namespaces, and whether it is in a Landlock domain of its own. */
const PROBE = [
  "id -u; id -g; pwd",
  "grep -E '^Cap(Eff|Bnd|Prm|Inh|Amb)' /proc/self/status | tr -s '\\t' ' '",
  "readlink /proc/self/ns/net /proc/self/ns/uts /proc/self/ns/mnt",
  "ls /proc/self/fd | wc -l",
].join("; ");

/** Enter helpers (argv0 burrow-enter) started by this test's CLIs that are still there. */
function enterHelpersOf(tag: string): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => argvOf(pid)[0] === "burrow-enter" && procEnv(pid).tag === tag);
}

for (const mode of ["rootless", "rootful"] as const) {
  describe.skipIf(!!why)(`the enter step (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(() => t.dispose());

    const ways = [
      { name: "the C helper", env: { BURROW_LOG: "debug" }, says: /enter \d+: the C helper/ },
      { name: "the Bun role (BURROW_ENTER_HELPER=0)", env: { BURROW_LOG: "debug", BURROW_ENTER_HELPER: "0" }, says: /enter: the Bun __enter role/ },
    ];

    test("run, exec and run -d give the command the same namespaces, capabilities, user and directory either way", async () => {
      const seen: string[] = [];
      for (const way of ways) {
        const name = `probe-${seen.length}`;
        await t.burrowOk(["run", "-d", "--name", name, "--network", "none", "--", "sleep", "300"], { env: way.env });
        const pid = Number((await t.burrowOk(["inspect", name, "--format", "{{.State.Pid}}"])).trim());
        await until(() => /^Name:\s*sleep$/m.test(readFileSync(`/proc/${pid}/status`, "utf8")));
        const status = readFileSync(`/proc/${pid}/status`, "utf8");
        expect(/^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1]).toBe(DEFAULT_MASK);
        expect(/^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1]).toBe("0000000000000000");

        const exec = await t.burrow(["exec", "-w", "/tmp", "--user", "1:1", name, "--", "sh", "-c", PROBE], { env: way.env });
        expect(exec.code).toBe(0);
        expect(exec.stderr).toMatch(way.says);
        const lines = exec.stdout.trim().split("\n");
        expect(lines.slice(0, 3)).toEqual(["1", "1", "/tmp"]);
        // --user 1: a non-root command keeps no capability; the bounding set stays the default.
        expect(lines.slice(3, 8)).toEqual([
          "CapInh: 0000000000000000",
          "CapPrm: 0000000000000000",
          "CapEff: 0000000000000000",
          `CapBnd: ${DEFAULT_MASK}`,
          "CapAmb: 0000000000000000",
        ]);
        // The sleeping command's namespaces, not the CLI's.
        const nsOfSleep = ["net", "uts", "mnt"].map((k) => readlinkSync(`/proc/${pid}/ns/${k}`));
        expect(lines.slice(8, 11)).toEqual(nsOfSleep);
        // Nothing but stdio (and the fd ls itself reads) reaches the command: no pin, no memfd.
        expect(lines[11]).toBe("4");

        const fg = await t.burrow(
          [
            "run",
            "--rm",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "grep -E '^(CapEff|SigIgn)' /proc/self/status; mount -t tmpfs x /mnt 2>/dev/null; echo mount=$?; yes | head -1",
          ],
          {
            env: way.env,
          },
        );
        expect(fg.code).toBe(0);
        expect(fg.stderr).toMatch(way.says);
        expect(fg.stdout).toContain(DEFAULT_MASK);
        // No signal ignored, as a shell or podman starts a command: Bun's
        // ignored SIGPIPE used to reach it (and `yes | head` never ended).
        expect(fg.stdout).toMatch(/^SigIgn:\s+0000000000000000$/m);
        expect(fg.stdout).toContain("\ny\n");
        // Landlock (and the missing CAP_SYS_ADMIN) refuse the mount.
        expect(fg.stdout).toContain("mount=32");
        seen.push(way.name);
        await t.burrowOk(["rm", "-f", name]);
      }
      expect(seen.length).toBe(2);
    });

    test("a foreground run starts its enter step while the daemon makes the sandbox; one called off leaves nothing", async () => {
      const env = { BURROW_LOG: "debug" };
      const ok = await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", "ls /proc/self/fd | wc -l; exit 5"], { env });
      expect(ok.code).toBe(5);
      expect(ok.stderr).toMatch(/enter \d+: the C helper, started ahead/);
      // stdio and ls's own fd: the FIFO its options came down is not the command's.
      expect(ok.stdout.trim()).toBe("4");
      // The daemon wrote them, at the end of the create, into the FIFO named after the request; no name is left.
      const daemonLog = () => readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8");
      expect(daemonLog()).toMatch(/enter options written \(.*\/enter\/[0-9a-f]{32}\)/);
      expect(daemonLog()).not.toMatch(/enter options left to the CLI/);
      expect(readdirSync(`${t.dirs.runtimeDir}/enter`)).toEqual([]);

      // Where no FIFO can be made (enter/ is a file), the CLI writes the options itself, as before.
      rmSync(`${t.dirs.runtimeDir}/enter`, { recursive: true });
      writeFileSync(`${t.dirs.runtimeDir}/enter`, "");
      const fallback = await t.burrow(["run", "--rm", "-w", "/tmp", "--network", "none", "--", "sh", "-c", "pwd; exit 6"], { env });
      expect([fallback.code, fallback.stdout]).toEqual([6, "/tmp\n"]);
      expect(daemonLog()).toMatch(/enter options left to the CLI \(.*\/enter\/[0-9a-f]{32}\): ENOTDIR/);
      rmSync(`${t.dirs.runtimeDir}/enter`);

      // A create the daemon refuses: the helper started ahead is called off without a word.
      const bad = await t.burrow(["run", "--rm", "--network", "no-such-net", "--", "sleep", "300"], { env });
      expect(bad.code).toBe(125);
      expect(bad.stderr).toMatch(/enter \d+: the C helper, started ahead/);
      expect(bad.stderr.split("\n").filter((l) => l.startsWith("Error:"))).toEqual(['Error: no network with name or id "no-such-net" found']);
      expect(enterHelpersOf(t.tag)).toEqual([]);

      // SIGTERM as soon as the helper is there, while the daemon may still be
      // making the sandbox: the command ends with it (143), and the sandbox goes.
      for (let i = 0; i < 5; i++) {
        const p = t.spawnBurrow(["run", "--rm", "--network", "none", "--", "sleep", "300"], { env });
        const reader = (p.stderr as ReadableStream<Uint8Array>).getReader();
        let err = "";
        while (!/started ahead/.test(err)) {
          const c = await reader.read();
          if (c.done) break;
          err += Buffer.from(c.value).toString();
        }
        expect(err).toMatch(/started ahead/);
        p.kill("SIGTERM");
        expect([i, await p.exited]).toEqual([i, 143]);
        reader.releaseLock();
      }
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      expect(enterHelpersOf(t.tag)).toEqual([]);
    });

    test("sandboxes made from the spare are named, their /etc/hostname bound, burrow's directory hidden; the daemon's main thread stays in its own mount namespace and directory", async () => {
      const probe = `hostname; cat /etc/hostname; ls -A ${t.dirs.runtimeDir} | wc -l`;
      for (let i = 0; i < 3; i++) {
        const r = await t.burrow(["run", "--rm", "--name", `own-${i}`, "--network=none", "--", "sh", "-c", probe]);
        expect(r.code).toBe(0);
        // Named, its /etc/hostname bound, burrow's runtime directory hidden (empty).
        expect(r.stdout).toBe(`own-${i}\nown-${i}\n0\n`);
      }
      const [pid] = daemonPids(t);
      expect(pid).toBeGreaterThan(0);
      // Its supervisor (rootless: the holder) started it in the namespace it must still be in.
      const parent = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      expect(readlinkSync(`/proc/${pid}/task/${pid}/ns/mnt`)).toBe(readlinkSync(`/proc/${parent}/ns/mnt`));
      expect(readlinkSync(`/proc/${pid}/task/${pid}/cwd`)).toBe(readlinkSync(`/proc/${parent}/cwd`));
    });

    test("exit codes and failures are the same either way: 127, 126, an exit status, a signal", async () => {
      for (const way of ways) {
        const nf = await t.burrow(["run", "--rm", "--network", "none", "--", "no-such-command"], { env: way.env });
        expect(nf.code).toBe(127);
        expect(nf.stderr).toContain("no-such-command: executable file not found in $PATH");
        const ne = await t.burrow(["run", "--rm", "--network", "none", "--", "/etc/passwd"], { env: way.env });
        expect(ne.code).toBe(126);
        expect(ne.stderr).toContain("/etc/passwd: permission denied: the file is not executable");
        const sig = await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", "kill -TERM $$"], { env: way.env });
        expect(sig.code).toBe(143);
        const code = await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", "exit 7"], { env: way.env });
        expect(code.code).toBe(7);
      }
    });
  });
}
