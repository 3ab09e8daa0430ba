// Issue 10 finding 2 (second half): a full state filesystem. slirp4netns used
// to be started before anything recorded it, so a write that failed for lack
// of space left one running that nothing knew about. Here a 1 MiB tmpfs is
// mounted over the state dir in a mount namespace made for the test (the
// machine's own mounts are never touched), filled up, and creates must then
// fail with a clear one-line error and leave nothing (no row, no
// slirp4netns, no pins), or succeed for real; once there is space again
// everything works. Runs as root in that namespace: rootless, the CLI is
// then run as the test user there (nsenter first, then setpriv), so the
// holder and daemon it starts see the tmpfs; rootful, inside the test netns
// as well. Ends with the leak check.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { burrowBin, integrationUnavailable, testUser, TAG_VAR } from "../helpers/env.ts";
import { procEnv } from "../helpers/leaks.ts";
import { listPids } from "../helpers/netns.ts";
import { commandFor, type RunResult } from "../helpers/run.ts";
import { AHEAD_PIN, startedAhead } from "../helpers/sys.ts";
import { eventually } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping disk-full integration tests: ${why}`);

function slirpPids(t: BurrowContext): number[] {
  return listPids().filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") return false;
      // Not one the daemon started ahead for its next sandbox: no sandbox's.
      return argv.some((a) => a.endsWith("slirp4netns")) && !startedAhead(argv) && procEnv(pid).tag === t.tag;
    } catch {
      return false;
    }
  });
}

const until = (cond: () => boolean | Promise<boolean>, ms = 8000) => eventually(cond, ms);

async function runCmd(argv: string[], env: Record<string, string>, cwd: string, timeoutMs = 30_000): Promise<RunResult> {
  const p = Bun.spawn(argv, { env, cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode ?? 137, stdout, stderr, timedOut: p.signalCode === "SIGKILL" };
}

interface PsRow {
  Id: string;
  Names: string[];
  State: string;
}

for (const mode of ["rootless", "rootful"] as const) {
  describe.skipIf(!!why)(`a full state filesystem (${mode})`, () => {
    let t: BurrowContext;
    let keeper: Subprocess | null = null;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      // The namespace (and its tmpfs) goes with its last process: the
      // keeper, and the daemon and holder dispose() ends.
      try {
        await t.dispose();
      } finally {
        keeper?.kill("SIGKILL");
        await keeper?.exited;
        keeper = null;
      }
    });

    test("creates fail with a clear error and leave nothing; with space again everything works", async () => {
      // A private mount namespace kept alive by a sleeper, a 1 MiB tmpfs in it over the state dir.
      keeper = Bun.spawn(["unshare", "--mount", "--propagation", "private", "--", "sleep", "600"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      const mntns = `/proc/${keeper.pid}/ns/mnt`;
      expect(await until(() => readFileSync(`/proc/${keeper!.pid}/cmdline`, "utf8").startsWith("sleep"))).toBe(true);
      const inNs = (cmd: string[]) => runCmd(["nsenter", `--mount=${mntns}`, "--", ...cmd], { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, "/");
      const u = testUser();
      const owner = mode === "rootless" ? `,uid=${u.uid},gid=${u.gid}` : "";
      const mounted = await inNs(["mount", "-t", "tmpfs", "-o", `size=1m,mode=0700${owner}`, "burrow-test-full", t.dirs.stateDir]);
      expect(mounted.stderr).toBe("");
      const b = (args: string[]) => {
        // A short idle timeout: the daemon (and rootless, the holder, whose
        // mount namespace holds a copy of the tmpfs) ends soon after the last rm.
        const c = commandFor([burrowBin(), ...args], { mode, netns: t.netns, dirs: t.dirs, env: { [TAG_VAR]: t.tag, BURROW_IDLE_TIMEOUT: "1" } });
        return runCmd(["nsenter", `--mount=${mntns}`, "--", ...c.argv], c.env, c.cwd, 60_000);
      };
      const ps = async () => {
        const r = await b(["ps", "-a", "--format", "json"]);
        expect(r.stderr).toBe("");
        return JSON.parse(r.stdout) as PsRow[];
      };
      // Sandboxes on slirp4netns have one each; rootless, bridge ones share one.
      const bridged = (n: string) => /^full\d+$/.test(n) && Number(n.slice(4)) % 3 === 2;
      const slirpRunning = async () => {
        const running = (await ps()).filter((r) => r.State === "running");
        const shared = mode === "rootless" && running.some((r) => bridged(r.Names[0]!)) ? 1 : 0;
        return running.filter((r) => !bridged(r.Names[0]!)).length + shared;
      };

      const first = await b(["run", "-d", "--name", "before", "--network", "slirp4netns", "-p", "127.0.0.1::80", "--", "sleep", "300"]);
      expect(first.stderr).toBe("");
      // Fill it up with 4 KiB files (the last write stops at ENOSPC); each
      // attempt below frees one more page, so creates run out of space at
      // different steps (the row, the helper's record, its pid, the CNI cache).
      await inNs([
        "sh",
        "-c",
        `i=0; while dd if=/dev/zero of=${t.dirs.stateDir}/filler$i bs=4k count=1 2>/dev/null; do i=$((i+1)); done; rm -f ${t.dirs.stateDir}/filler$i`,
      ]);
      const df = await inNs(["df", "--output=avail", t.dirs.stateDir]);
      expect(Number(df.stdout.trim().split("\n").at(-1)!.trim())).toBeLessThan(8);

      const failures: string[] = [];
      for (let i = 0; i < 16; i++) {
        const name = `full${i}`;
        if (i > 0) await inNs(["rm", "-f", `${t.dirs.stateDir}/filler${i - 1}`]);
        // Every third on a bridge network: CNI writes its cache in the state dir too.
        const network = i % 3 === 2 ? "bridge" : "slirp4netns";
        const r = await b(["run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::80", "--", "sleep", "300"]);
        const rows = await ps();
        const row = rows.find((x) => x.Names[0] === name);
        if (r.code === 0) {
          // A create that still fitted (the WAL had room): it must be real.
          expect({ name, state: row?.State }).toEqual({ name, state: "running" });
        } else {
          failures.push(r.stderr.trim());
          expect(r.code).toBe(125);
          expect(r.stderr.trim().split("\n")).toHaveLength(1);
          expect(r.stderr).toContain(`the state directory ${t.dirs.stateDir} is full`);
          if (row) console.log(`daemon log:\n${readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8").split("\n").slice(-30).join("\n")}`);
          expect({ name, row: row?.State }).toEqual({ name, row: undefined });
        }
        // Nothing leaked: one slirp4netns per running sandbox, no more.
        const want = await slirpRunning();
        expect(await until(() => slirpPids(t).length === want)).toBe(true);
      }
      expect(failures.length).toBeGreaterThan(0);
      console.log(`disk-full (${mode}): ${failures.length} of 16 creates refused: ${[...new Set(failures)].join(" | ")}`);

      // Space again: creates, rm and ps all work.
      await inNs(["sh", "-c", `rm -f ${t.dirs.stateDir}/filler*`]);
      const after = await b(["run", "-d", "--name", "after", "--network", "slirp4netns", "-p", "127.0.0.1::80", "--", "sleep", "300"]);
      expect(after.stderr).toBe("");
      expect((await ps()).find((r) => r.Names[0] === "after")?.State).toBe("running");
      const all = (await ps()).map((r) => r.Id);
      const rm = await b(["rm", "-f", ...all]);
      expect(rm.stderr).toBe("");
      expect(await ps()).toEqual([]);
      expect(await until(() => slirpPids(t).length === 0)).toBe(true);
      // No sandbox's pin is left in the test's mount namespace (rootful pins live there; the daemon's slirp4netns started ahead keeps its own).
      const pins = readFileSync(`/proc/${keeper.pid}/mountinfo`, "utf8")
        .split("\n")
        .filter((l) => l.includes(`${t.dirs.runtimeDir}/pins/`) && !AHEAD_PIN.test(l));
      expect(pins).toEqual([]);
      // Idle: the daemon exits (rootless, ending the holder too), so no copy of the tmpfs outlives the test.
      const services = () => listPids().filter((pid) => procEnv(pid).tag === t.tag);
      expect(await until(() => services().length === 0, 10_000)).toBe(true);
    }, 120_000);
  });
}
