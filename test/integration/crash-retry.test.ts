// Issue 10 finding 2: a create interrupted by a daemon crash. Twenty CLIs
// create at once, the daemon is killed with SIGKILL in the middle, and the
// CLIs retry against the daemon the next of them starts. Every CLI must get
// a true answer (an id whose sandbox runs, or a clear one-line error with
// nothing of that name left), never "name already in use" for its own
// half-made sandbox, and every slirp4netns must belong to a running sandbox.
// Real binary, real slirp4netns and CNI, as the test user and rootful in a
// test netns; each test ends with the leak check.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { burrowContext, daemonPids, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { procEnv } from "../helpers/leaks.ts";
import { listPids } from "../helpers/netns.ts";
import { eventually } from "../helpers/until.ts";
import { argvOf, startedAhead } from "../helpers/sys.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping crash-retry integration tests: ${why}`);

const ROUNDS = Number(process.env.BURROW_CRASH_ROUNDS ?? "10");
const CLIS = Number(process.env.BURROW_CRASH_CLIS ?? "20");

/** This context's live slirp4netns processes (they carry its test tag), but one the daemon started ahead for its next sandbox. */
function slirpPids(t: BurrowContext): number[] {
  return listPids().filter((pid) => {
    const argv = argvOf(pid);
    if (!argv.some((a) => a.endsWith("slirp4netns")) || startedAhead(argv)) return false;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") return false;
    } catch {
      return false;
    }
    return procEnv(pid).tag === t.tag;
  });
}

/** dnsmasq processes serving this context's networks: rootful, dnsname keeps
 * their files under the context's runtime dir; rootless, they inherit the
 * test tag through the plugin runner. */
function dnsmasqPids(t: BurrowContext): number[] {
  return listPids().filter((pid) => {
    const argv = argvOf(pid);
    return (argv[0] ?? "").endsWith("dnsmasq") && (argv.some((a) => a.includes(t.dirs.root)) || procEnv(pid).tag === t.tag);
  });
}

const until = (cond: () => boolean | Promise<boolean>, ms = 8000) => eventually(cond, ms);

interface PsRow {
  Id: string;
  Names: string[];
  State: string;
}

for (const mode of ["rootless", "rootful"] as const) {
  describe.skipIf(!!why)(`creates survive a daemon crash (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test(
      `kill -9 of the daemon during ${CLIS} concurrent creates, ${ROUNDS} times: true answers, no helper without a sandbox`,
      async () => {
        // Every fourth on a bridge network with DNS: rootless, that is the
        // shared namespace's slirp4netns; rootful, CNI in the test netns;
        // both, dnsname's dnsmasq.
        await t.burrowOk(["network", "create", "crashnet"]);
        const network = (i: number) => (i % 4 === 3 ? "crashnet" : "slirp4netns");
        const summary: string[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          await t.burrowOk(["ps"]); // a daemon to kill
          const [daemon] = daemonPids(t);
          expect(daemon).toBeGreaterThan(0);
          const names = Array.from({ length: CLIS }, (_, i) => `c${round}x${i}`);
          const clis = names.map((name, i) =>
            t.burrow(["run", "-d", "--name", name, "--network", network(i), "-p", "127.0.0.1::8080", "--", "sleep", "300"], { timeoutMs: 60_000 }),
          );
          // Somewhere in the middle: CLIs connected, some creates half-way.
          await Bun.sleep(30 + ((round * 97) % 400));
          process.kill(daemon!, "SIGKILL");
          const results = await Promise.all(clis);

          const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])) as PsRow[];
          const byName = new Map(ps.map((r) => [r.Names[0], r]));
          let ok = 0;
          for (const [i, r] of results.entries()) {
            const name = names[i]!;
            const row = byName.get(name);
            if (r.code === 0) {
              ok++;
              // Success: the id printed is a running sandbox of that name.
              expect({ name, id: r.stdout.trim().length }).toEqual({ name, id: 64 });
              expect({ name, state: row?.State, id: row?.Id }).toEqual({ name, state: "running", id: r.stdout.trim() });
            } else {
              // A clear error, and nothing of that name left.
              expect({ name, timedOut: r.timedOut }).toEqual({ name, timedOut: false });
              expect(r.stderr.trim().split("\n")).toHaveLength(1);
              expect(r.stderr).not.toContain("already in use");
              expect({ name, row: row?.State }).toEqual({ name, row: undefined });
            }
          }
          // No name clash from a retry meeting its own first attempt.
          for (const r of results) expect(r.stderr).not.toContain("already in use");
          // Every slirp4netns belongs to a running sandbox (one each, plus the
          // rootless bridge namespace's one while a bridge sandbox runs).
          const running = ps.filter((r) => r.State === "running");
          const perSandbox = running.filter((r) => network(names.indexOf(r.Names[0]!)) === "slirp4netns").length;
          const bridged = running.some((r) => network(names.indexOf(r.Names[0]!)) === "crashnet");
          const shared = mode === "rootless" && bridged ? 1 : 0;
          const accounted = await until(() => slirpPids(t).length === perSandbox + shared);
          expect({ round, slirp4netns: slirpPids(t).length }).toEqual({ round, slirp4netns: perSandbox + shared });
          expect(accounted).toBe(true);
          // One dnsmasq for the network while a sandbox is on it, none otherwise.
          expect(await until(() => dnsmasqPids(t).length === (bridged ? 1 : 0))).toBe(true);
          summary.push(`${ok}/${CLIS}`);

          if (ps.length) await t.burrowOk(["rm", "-f", ...ps.map((r) => r.Id)], { timeoutMs: 60_000 });
          expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
          expect(await until(() => slirpPids(t).length === 0)).toBe(true);
          expect(await until(() => dnsmasqPids(t).length === 0)).toBe(true);
        }
        await t.burrowOk(["network", "rm", "crashnet"]);
        // The kills did land mid-create: some half-made creates were rolled back and created afresh.
        const log = readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8");
        const rolledBack = log.split("\n").filter((l) => l.includes("rolled back the create of")).length;
        console.log(`crash-retry (${mode}): created per round ${summary.join(" ")}; half-made creates rolled back: ${rolledBack}`);
        if (ROUNDS >= 5) expect(rolledBack).toBeGreaterThan(0);
      },
      ROUNDS * 60_000,
    );
  });
}
