// Isolation between sandboxes (issue 19 item 1): a hostile command in one
// sandbox tries to reach another sandbox's network namespace (through
// /proc/PID/ns/net and through the pins), to make namespaces and mounts of
// its own and to change its network, under podman's default capability set
// and under --cap-add of each capability that would matter. The rootful
// runs are root inside a test netns.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { listPids } from "../helpers/netns.ts";
import { argvOf } from "../helpers/sys.ts";
import { until } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping isolation integration tests: ${why}`);

/** podman's default set as /proc/PID/status prints it: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE SYS_CHROOT SETFCAP. */
const DEFAULT_MASK = "00000000800405fb";
const DEFAULT_NAMES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_SETFCAP",
];

/** One probe a line, "NAME=exit status", run by sh inside the attacking sandbox. */
function probes(victim: { pid: number; pin: string }, runtimeDir: string): string {
  return [
    `nsenter --net=/proc/${victim.pid}/ns/net true 2>/dev/null; echo nsenter-proc=$?`,
    `nsenter --net=${victim.pin} true 2>/dev/null; echo nsenter-pin=$?`,
    `cat /proc/${victim.pid}/environ >/dev/null 2>&1; echo environ=$?`,
    `ls ${runtimeDir}/pins >/dev/null 2>&1; echo pins=$?`,
    `test -e ${runtimeDir}/control.sock; echo socket=$?`,
    `unshare -n true 2>/dev/null; echo unshare-net=$?`,
    `mount -t tmpfs probe /mnt 2>/dev/null; echo mount=$?`,
    `ip link add probe0 type veth peer name probe1 2>/dev/null; echo link-add=$?`,
  ].join("; ");
}

function results(stdout: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of stdout.split("\n")) {
    const m = /^([a-z-]+)=(\d+)$/.exec(line.trim());
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

function statusCaps(status: string): { eff: string; bnd: string; prm: string } {
  const field = (k: string) => new RegExp(`^${k}:\\s*([0-9a-f]+)$`, "m").exec(status)?.[1] ?? "";
  return { eff: field("CapEff"), bnd: field("CapBnd"), prm: field("CapPrm") };
}

for (const mode of ["rootless", "rootful"] as const) {
  describe.skipIf(!!why)(`isolation between sandboxes (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(() => t.dispose());

    /** The victim's command pid and its network namespace pin (inspect's SandboxKey). */
    async function victim(): Promise<{ pid: number; pin: string }> {
      // Networked (the default mode): what a --network none attacker would want to join.
      await t.burrowOk(["run", "-d", "--name", "victim", "--", "sleep", "300"]);
      const pid = Number((await t.burrowOk(["inspect", "victim", "--format", "{{.State.Pid}}"])).trim());
      // The enter child keeps every capability until its execve: wait for the command.
      await until(() => /^Name:\s*sleep$/m.test(readFileSync(`/proc/${pid}/status`, "utf8")));
      const pin = (await t.burrowOk(["inspect", "victim", "--format", "{{.NetworkSettings.SandboxKey}}"])).trim();
      expect(pin).toStartWith(`${t.dirs.runtimeDir}/pins/`);
      return { pid, pin };
    }

    test("podman's default set: inspect shows it, the command has exactly it, and a hostile command reaches no sibling", async () => {
      const v = await victim();
      const pid = v.pid;
      const inspected = JSON.parse(await t.burrowOk(["inspect", "victim", "--format", "json"]))[0];
      expect([...inspected.EffectiveCaps].sort()).toEqual([...DEFAULT_NAMES].sort());
      expect([...inspected.BoundingCaps].sort()).toEqual([...DEFAULT_NAMES].sort());
      expect(inspected.HostConfig.Privileged).toBe(false);
      expect(statusCaps(readFileSync(`/proc/${pid}/status`, "utf8"))).toEqual({ eff: DEFAULT_MASK, bnd: DEFAULT_MASK, prm: DEFAULT_MASK });

      const r = await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", `${probes(v, t.dirs.runtimeDir)}; ip -o link show | wc -l`]);
      expect(r.code).toBe(0);
      const got = results(r.stdout);
      expect(got).toEqual({ "nsenter-proc": 1, "nsenter-pin": 1, environ: 1, pins: 2, socket: 1, "unshare-net": 1, mount: 32, "link-add": 2 });
      // Still only its own loopback: nothing joined, nothing added.
      expect(r.stdout.trim().split("\n").at(-1)).toBe("1");
      // And the victim is untouched by the attempts.
      expect(statusCaps(readFileSync(`/proc/${pid}/status`, "utf8")).eff).toBe(DEFAULT_MASK);
      await t.burrowOk(["rm", "-f", "victim"]);
    });

    test("--cap-add NET_ADMIN changes its own network only; SYS_PTRACE still reaches no sibling", async () => {
      const v = await victim();
      const netAdmin = results(
        (await t.burrowOk(["run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", "--", "sh", "-c", probes(v, t.dirs.runtimeDir)])).toString(),
      );
      expect(netAdmin).toEqual({ "nsenter-proc": 1, "nsenter-pin": 1, environ: 1, pins: 2, socket: 1, "unshare-net": 1, mount: 32, "link-add": 0 });

      // SYS_PTRACE alone opens nothing: the sibling stays out of its Landlock domain.

      const ptrace = results(
        await t.burrowOk(["run", "--rm", "--network", "none", "--cap-add", "CAP_SYS_PTRACE", "--", "sh", "-c", probes(v, t.dirs.runtimeDir)]),
      );
      expect(ptrace).toEqual({ "nsenter-proc": 1, "nsenter-pin": 1, environ: 1, pins: 2, socket: 1, "unshare-net": 1, mount: 32, "link-add": 2 });
      await t.burrowOk(["rm", "-f", "victim"]);
    });

    test("--cap-add SYS_ADMIN is what podman makes of it: mounts and namespaces of its own, and the user's grant to reach a sibling", async () => {
      const v = await victim();
      const sysAdmin = results(
        await t.burrowOk(["run", "--rm", "--network", "none", "--cap-add", "sys_admin", "--", "sh", "-c", probes(v, t.dirs.runtimeDir)]),
      );
      // Pins and the socket stay covered until it unmounts the cover itself.
      expect(sysAdmin).toEqual({ "nsenter-proc": 0, "nsenter-pin": 1, environ: 0, pins: 2, socket: 1, "unshare-net": 0, mount: 0, "link-add": 2 });
      await t.burrowOk(["rm", "-f", "victim"]);
    });

    test("--privileged is every capability and may join a sibling, as the user asked", async () => {
      const v = await victim();
      const pid = v.pid;
      const r = await t.burrow([
        "run",
        "--rm",
        "--network",
        "none",
        "--privileged",
        "--",
        "sh",
        "-c",
        `nsenter --net=/proc/${pid}/ns/net ip -o link show | wc -l`,
      ]);
      expect(r.code).toBe(0);
      // The victim's network has more than a loopback (its tap0 or eth0).
      expect(Number(r.stdout.trim())).toBeGreaterThan(1);
      await t.burrowOk(["rm", "-f", "victim"]);
    });

    test("--cap-drop ALL, --cap-drop of one, and a bad name refused with nothing left", async () => {
      const none = await t.burrowOk(["run", "--rm", "--cap-drop", "ALL", "--network", "none", "--", "grep", "^CapEff", "/proc/self/status"]);
      expect(none.trim()).toBe("CapEff:\t0000000000000000");
      const lessKill = await t.burrowOk(["run", "--rm", "--cap-drop", "kill", "--network", "none", "--", "grep", "^CapBnd", "/proc/self/status"]);
      expect(lessKill.trim()).toBe("CapBnd:\t00000000800405db");
      for (const flag of ["--cap-add", "--cap-drop"]) {
        const bad = await t.burrow(["run", "--rm", flag, "CAP_BOGUS", "--", "true"]);
        expect(bad.code).toBe(125);
        expect(bad.stderr.trim().split("\n")).toHaveLength(1);
        expect(bad.stderr).toContain(`invalid ${flag} "CAP_BOGUS"`);
      }
      expect((await t.burrowOk(["ps", "-a", "--format", "{{.Names}}"])).trim()).toBe("");
    });

    test("the confinement leaves ordinary file work alone: renames and links across directories", async () => {
      const r = await t.burrow([
        "run",
        "--rm",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "d=$(mktemp -d) && mkdir $d/a $d/b && echo x > $d/a/f && mv $d/a/f $d/b/f && ln $d/b/f $d/a/g && cat $d/a/g && rm -r $d && echo done",
      ]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("x\ndone\n");
      expect(r.code).toBe(0);
    });

    test("start, restart and exec keep the set the sandbox was made with", async () => {
      await t.burrowOk(["run", "-d", "--name", "kept", "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--", "sleep", "300"]);
      const expected = "00000000800415fa"; // default + NET_ADMIN (12) - CHOWN (0)
      // The pid is the enter child's from its start: read its status once it is the command.
      const capsOfCommand = async () => {
        const pid = Number((await t.burrowOk(["inspect", "kept", "--format", "{{.State.Pid}}"])).trim());
        return await until(() => {
          const status = readFileSync(`/proc/${pid}/status`, "utf8");
          return /^Name:\s*sleep$/m.test(status) ? statusCaps(status).eff : null;
        });
      };
      expect(await capsOfCommand()).toBe(expected);
      expect((await t.burrowOk(["exec", "kept", "--", "grep", "^CapEff", "/proc/self/status"])).trim()).toBe(`CapEff:\t${expected}`);
      await t.burrowOk(["stop", "-t", "0", "kept"]);
      await t.burrowOk(["start", "kept"]);
      expect(await capsOfCommand()).toBe(expected);
      await t.burrowOk(["restart", "-t", "0", "kept"]);
      expect(await capsOfCommand()).toBe(expected);
      const inspected = JSON.parse(await t.burrowOk(["inspect", "kept", "--format", "json"]))[0];
      expect(inspected.HostConfig.CapAdd).toEqual(["CAP_NET_ADMIN"]);
      expect(inspected.HostConfig.CapDrop).toEqual(["CAP_CHOWN"]);
      await t.burrowOk(["rm", "-f", "kept"]);
    });

    test("the namespace worker, reused from one sandbox to the next, gives each fresh namespaces and none of the last one's mounts", async () => {
      // The first sandbox's namespaces come from the spare; the worker is
      // then sent back to the daemon's mount namespace and made the next
      // spare (src/namespaces/create-worker.ts), for each sandbox here. All
      // stay alive, so that no namespace number can be handed out twice.
      const names = ["first", "next-1", "next-2", "next-3"];
      const seen = new Set<string>();
      const mountCounts: number[] = [];
      for (const name of names) {
        await t.burrowOk(["run", "-d", "--name", name, "--hostname", `${name}-host`, "--", "sleep", "300"]);
        const id = (await t.burrowOk(["inspect", name, "--format", "{{.Id}}"])).trim();
        const pid = Number((await t.burrowOk(["inspect", name, "--format", "{{.State.Pid}}"])).trim());
        // The pid is the enter step's until it execs the command, in the sandbox's namespaces by then.
        await until(() => /^Name:\s*sleep$/m.test(readFileSync(`/proc/${pid}/status`, "utf8")));
        for (const kind of ["mnt", "net", "uts"]) {
          const ns = readlinkSync(`/proc/${pid}/ns/${kind}`);
          expect(seen.has(ns)).toBe(false);
          seen.add(ns);
        }
        // Its own /etc binds only (their sources are under the sandbox's id),
        // none of a sandbox before, and no namespace pin: the copies of the
        // other sandboxes' pins that its new mount namespace began with are
        // unmounted there, so none keeps a removed sandbox's namespaces alive.
        const mounts = readFileSync(`/proc/${pid}/mountinfo`, "utf8");
        expect(new Set([...mounts.matchAll(/\/sandboxes\/([0-9a-f]{64})\//g)].map((m) => m[1]))).toEqual(new Set([id]));
        // (Rootful, the host's own nsfs mounts are copied too, such as this test's netns under /run/netns: not burrow's.)
        // Mount points (the fifth field) below burrow's dirs: only the tmpfs covers sit on the dirs themselves.
        const burrows = [t.dirs.runtimeDir, t.dirs.stateDir].map((d) => `${d}/`);
        expect(mounts.split("\n").filter((l) => burrows.some((d) => l.split(" ")[4]?.startsWith(d)))).toEqual([]);
        mountCounts.push(mounts.split("\n").filter((l) => l).length);
        expect((await t.burrowOk(["exec", name, "--", "hostname"])).trim()).toBe(`${name}-host`);
      }
      // No mount is carried from one sandbox to the next.
      expect(new Set(mountCounts).size).toBe(1);
      await t.burrowOk(["rm", "-f", ...names]);
    });

    if (mode === "rootless")
      test("the rootless network namespace of bridge networks is out of reach too", async () => {
        // A sandbox whose pins exist before the bridge network's runner starts.
        await t.burrowOk(["run", "-d", "--name", "before", "--", "sleep", "300"]);
        await t.burrowOk(["network", "create", "isonet"]);
        await t.burrowOk(["run", "-d", "--name", "onbridge", "--network", "isonet", "--", "sleep", "300"]);
        // dnsname's dnsmasq lives in the rootless network namespace: its /proc entry is a way in.
        const dnsmasq = await until(
          () => {
            for (const p of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
              try {
                const cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8");
                if (cmdline.split("\0")[0]?.endsWith("dnsmasq") && cmdline.includes(t.dirs.stateDir)) return Number(p);
              } catch {}
            }
            return null;
          },
          10_000,
          "the network's dnsmasq",
        );
        const r = await t.burrow(["run", "--rm", "--network", "none", "--", "sh", "-c", `nsenter --net=/proc/${dnsmasq}/ns/net true; echo rc=$?`]);
        expect(r.stdout.trim()).toBe("rc=1");
        // The plugins' runner (a private mount namespace, long-lived) holds no copy of a sandbox's pins: it reaches
        // them through /proc/<daemon>/root, and a copy would keep a removed sandbox's namespaces alive.
        const runner = listPids().find((pid) => {
          const argv = argvOf(pid);
          return argv[1] === "__cni-runner" && argv[2]?.includes(t.dirs.runtimeDir);
        });
        expect(runner).toBeDefined();
        const pinCopies = readFileSync(`/proc/${runner}/mountinfo`, "utf8")
          .split("\n")
          .filter((l) => l.split(" ")[4]?.includes("/pins/"));
        expect(pinCopies).toEqual([]);
        await t.burrowOk(["rm", "-f", "onbridge", "before"]);
        await t.burrowOk(["network", "rm", "isonet"]);
      });
  });
}
