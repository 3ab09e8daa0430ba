// Issue 19 item 8: a state database the daemon cannot use, and one that is
// gone. `doctor` names the problem without starting a daemon; `burrow system
// recover` sets the file aside and stops every sandbox nothing records any
// more (slirp4netns with -p, pasta, a bridge network), with their helpers,
// pins and CNI attachments; a daemon that starts on a fresh database (the
// old one deleted) does the same. Every test ends with the leak check.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { burrowContext, type BurrowContext, daemonPidsOf } from "../helpers/context.ts";
import { integrationUnavailable, testUser } from "../helpers/env.ts";
import { addUplink, listPids } from "../helpers/netns.ts";
import { fetchFromHost } from "../helpers/published.ts";
import { until } from "../helpers/until.ts";
import { describeWhen } from "../helpers/requirements.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping state recovery integration tests: ${why}`);

// Below the ephemeral range (32768-60999 here: an outgoing connection may take such a port
// at any time) and apart from the other files' ranges.
let nextPort = 10000 + Math.floor(Math.random() * 2000);

function daemonPid(runtimeDir: string): number | undefined {
  return daemonPidsOf(runtimeDir)[0];
}

/** Waits for state.db written back in the state dir and a daemon other than `before` (the supervisor's restart on it). */
async function writtenBackAndRestarted(t: BurrowContext, before: number): Promise<void> {
  await until(() => existsSync(`${t.dirs.stateDir}/state.db`), 5000, "state.db to be written back");
  await until(
    () => {
      const d = daemonPid(t.dirs.runtimeDir);
      return d !== undefined && d !== before;
    },
    5000,
    "the restarted daemon",
  );
}

/** Processes of this context's helpers (slirp4netns, pasta, dnsmasq) and sandboxes, by the dirs in their command line or environment. */
function contextProcesses(t: BurrowContext, names: RegExp): number[] {
  return listPids().filter((pid) => {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      if (!names.test(comm)) return false;
      // A zombie is dead already; only its parent has yet to reap it.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return false;
      const env = readFileSync(`/proc/${pid}/environ`, "utf8");
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return env.includes(t.dirs.stateDir) || env.includes(t.dirs.runtimeDir) || cmd.includes(t.dirs.runtimeDir) || env.includes(t.tag);
    } catch {
      return false;
    }
  });
}

/** A detached web server on `network` publishing `port` (none: no -p). */
async function web(t: BurrowContext, name: string, network: string, port?: number): Promise<void> {
  const dir = `${t.dirs.root}/www-${name}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/index.html`, `${name}\n`);
  if (t.mode === "rootless") {
    chownSync(dir, testUser().uid, testUser().gid);
    chownSync(`${dir}/index.html`, testUser().uid, testUser().gid);
  }
  const publish = port ? ["-p", `127.0.0.1:${port}:8080`] : [];
  await t.burrowOk(["run", "-d", "--name", name, "--network", network, ...publish, "--", "busybox", "httpd", "-f", "-p", "8080", "-h", dir]);
  if (port) expect(await until(() => fetchFromHost(t, port), 10000, `${name} on ${port}`)).toBe(`${name}\n`);
}

/**
 * Overwrites the database's first page and its WAL's header (a WAL with a
 * bad header is ignored, else its copy of page 1 would hide the damage):
 * SQLite's "file is not a database".
 */
function damage(stateDir: string): void {
  for (const file of [`${stateDir}/state.db`, `${stateDir}/state.db-wal`]) {
    if (!existsSync(file)) continue;
    const fd = openSync(file, "r+");
    try {
      writeSync(fd, Buffer.alloc(4096, 0x41), 0, 4096, 0);
    } finally {
      closeSync(fd);
    }
  }
}

for (const mode of ["rootless", "rootful"] as const) {
  describeWhen(why)(`state recovery (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("a damaged state.db: doctor says so; system recover sets it aside and stops slirp4netns, pasta and bridge sandboxes with their helpers", async () => {
      const ports = { slirp: nextPort++, pasta: nextPort++, bridge: nextPort++ };
      await t.burrowOk(["network", "create", "recovernet"]);
      await web(t, "slirp", "slirp4netns", ports.slirp);
      // pasta needs an interface with a route out: rootful, the test netns is given one.
      if (t.netns) await addUplink(t.netns);
      await web(t, "pasta", "pasta", ports.pasta);
      const sandboxes = 3;
      await web(t, "bridged", "recovernet", ports.bridge);
      expect(contextProcesses(t, /^(slirp4netns|pasta|passt)/).length).toBeGreaterThanOrEqual(sandboxes - 1);

      // Damaged under the running daemon, which then dies: the next one cannot open it.
      damage(t.dirs.stateDir);
      const daemon = daemonPid(t.dirs.runtimeDir)!;
      expect(daemon).toBeGreaterThan(0);
      process.kill(daemon, "SIGKILL");
      await until(() => daemonPid(t.dirs.runtimeDir) !== daemon || null, 5000, "the daemon to die");
      const ps = await t.burrow(["ps", "-a"]);
      expect(ps.code).not.toBe(0);
      expect(ps.stderr).toContain("file is not a database");
      expect(ps.stderr).toContain("burrow system recover");

      // doctor, with no daemon: one FAIL line naming the file, and the fix.
      const doctor = await t.burrow(["doctor"]);
      expect(doctor.code).not.toBe(0);
      const line = doctor.stdout.split("\n").find((l) => l.includes("state database"))!;
      expect(line).toMatch(/^FAIL\s+state database\s+.*state\.db: file is not a database/);
      expect(doctor.stdout).toContain("fix: burrow system recover");

      const r = await t.burrow(["system", "recover"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const aside = r.stdout.match(/set it aside as (\S+)/)?.[1];
      expect(aside).toBeDefined();
      expect(existsSync(aside!)).toBe(true);
      expect(r.stdout.match(/^stopped sandbox [0-9a-f]{12}: no record of it was left$/gm)).toHaveLength(sandboxes);

      // Nothing runs unrecorded: no sandbox, no helper, dead ports, no pins.
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      expect(contextProcesses(t, /^(slirp4netns|pasta|passt|httpd|busybox)/)).toEqual([]);
      for (const port of [ports.slirp, ports.pasta, ports.bridge]) expect(await fetchFromHost(t, port)).toBeNull();
      expect(readdirSync(`${t.dirs.runtimeDir}/pins`)).toEqual([]);
      // doctor is content again, and burrow works as before.
      expect((await t.burrow(["doctor"])).stdout).toMatch(/^ok\s+state database/m);
      await web(t, "again", "slirp4netns", nextPort);
      await t.burrowOk(["rm", "-f", "again"]);
      await t.burrowOk(["network", "rm", "recovernet"]);
      rmSync(aside!, { force: true });
    });

    test("damage that spares the sandboxes' rows: system recover keeps those sandboxes, running, with their ports", async () => {
      const port = nextPort++;
      await web(t, "kept", "slirp4netns", port);
      // A clean stop (its sandboxes run on; no supervisor restarts it) writes everything into state.db.
      const daemon = daemonPid(t.dirs.runtimeDir)!;
      process.kill(daemon, "SIGTERM");
      await until(() => daemonPid(t.dirs.runtimeDir) === undefined, 10000, "the daemon to stop");
      const db = `${t.dirs.stateDir}/state.db`;
      const sql = async (q: string) => (await t.run(["sqlite3", "-readonly", db, q])).stdout.trim();
      const pageSize = Number(await sql("PRAGMA page_size"));
      const eventsPage = Number(await sql("SELECT rootpage FROM sqlite_master WHERE name = 'events'"));
      expect(eventsPage).toBeGreaterThan(1);
      const fd = openSync(db, "r+");
      writeSync(fd, Buffer.alloc(pageSize, 0x41), 0, pageSize, (eventsPage - 1) * pageSize);
      closeSync(fd);
      const ps = await t.burrow(["ps", "-a"]);
      expect(ps.code).not.toBe(0);
      expect(ps.stderr).toContain("burrow system recover");
      const r = await t.burrow(["system", "recover"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("kept the records of 1 sandbox that could still be read");
      expect(r.stdout).not.toContain("stopped sandbox");
      const rows = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
      expect(rows.map((x: { Names: string[]; State: string }) => [x.Names[0], x.State])).toEqual([["kept", "running"]]);
      expect(await until(() => fetchFromHost(t, port), 10000, "the kept sandbox's port")).toBe("kept\n");
      await t.burrowOk(["rm", "-f", "kept"]);
      rmSync(r.stdout.match(/set it aside as (\S+)/)![1]!, { force: true });
    });

    test("a database damaged under a running daemon: system recover stops that daemon first, then recovers", async () => {
      const port = nextPort++;
      await web(t, "running", "slirp4netns", port);
      const daemon = daemonPid(t.dirs.runtimeDir)!;
      damage(t.dirs.stateDir);
      const r = await t.burrow(["system", "recover"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`stopped the daemon (pid ${daemon}) that still had it open`);
      expect(r.stdout.match(/^stopped sandbox [0-9a-f]{12}: no record of it was left$/gm)).toHaveLength(1);
      expect(daemonPid(t.dirs.runtimeDir)).not.toBe(daemon);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      expect(await fetchFromHost(t, port)).toBeNull();
      rmSync(r.stdout.match(/set it aside as (\S+)/)![1]!, { force: true });
    });

    test("state.db deleted under a running daemon: written back from the open database, the daemon restarts on it, the sandbox keeps its port", async () => {
      const port = nextPort++;
      await web(t, "kept", "slirp4netns", port);
      const daemon = daemonPid(t.dirs.runtimeDir)!;
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${t.dirs.stateDir}/state.db${suffix}`, { force: true });
      await writtenBackAndRestarted(t, daemon);
      const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
      expect(ps.map((s: { Names: string[]; State: string }) => [s.Names[0], s.State])).toEqual([["kept", "running"]]);
      expect(await until(() => fetchFromHost(t, port), 10000, "the port after the restart")).toBe("kept\n");
      expect((await t.burrow(["doctor"])).stdout).toMatch(/^ok\s+state database\s+.*1 sandbox,/m);
      await t.burrowOk(["rm", "-f", "kept"]);
    });

    test("the state directory removed under a running daemon (rm -rf): made again, private, and written back; the sandbox keeps its port, and with nothing left the daemon still ends when idle", async () => {
      const port = nextPort++;
      // A daemon that ends 1 s after its last sandbox: the end of the test sees that it still does.
      await t.burrowOk(["ps"], { env: { BURROW_IDLE_TIMEOUT: "1" } });
      await web(t, "kept", "slirp4netns", port);
      // Its log's directory goes with the state dir: its output must go on into a new log, not fill its pipe.
      await t.burrowOk(["run", "-d", "--name", "talker", "--network", "none", "--", "sh", "-c", "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.05; done"]);
      const daemon = daemonPid(t.dirs.runtimeDir)!;
      rmSync(t.dirs.stateDir, { recursive: true, force: true });
      await writtenBackAndRestarted(t, daemon);
      const st = statSync(t.dirs.stateDir);
      expect(st.mode & 0o777).toBe(0o700);
      expect(st.uid).toBe(t.mode === "rootless" ? testUser().uid : 0);
      const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
      expect(ps.map((s: { Names: string[]; State: string }) => [s.Names[0], s.State]).sort()).toEqual([
        ["kept", "running"],
        ["talker", "running"],
      ]);
      expect(await until(() => fetchFromHost(t, port), 10000, "the port after the restart")).toBe("kept\n");
      // The new log grows: lines written after the restart, numbered on from before it.
      const lines = async () => (await t.burrowOk(["logs", "talker"])).trim().split("\n").filter(Boolean);
      const first = await until(async () => ((await lines()).length > 0 ? await lines() : null), 10000, "talker's new log");
      expect(first[0]).toMatch(/^line [1-9]\d*$/);
      await until(async () => ((await lines()).length > first.length + 5 ? true : null), 10000, "talker's log to grow");
      expect((await t.burrow(["doctor"])).stdout).toMatch(/^ok\s+state database\s+.*2 sandboxes,/m);
      await t.burrowOk(["rm", "-f", "kept", "talker"]);
      // Again with nothing running: written back, and the daemon ends when idle instead of trying every second.
      rmSync(t.dirs.stateDir, { recursive: true, force: true });
      await until(() => daemonPidsOf(t.dirs.runtimeDir).length === 0 || null, 10000, "the daemon's idle exit");
      expect(existsSync(`${t.dirs.stateDir}/state.db`)).toBe(true);
    });

    test("a state directory that cannot be made again (a file in its place): said once in the daemon's log, and the daemon still ends when idle", async () => {
      await t.burrowOk(["ps"], { env: { BURROW_IDLE_TIMEOUT: "1" } });
      expect(daemonPid(t.dirs.runtimeDir)).toBeGreaterThan(0);
      rmSync(t.dirs.stateDir, { recursive: true, force: true });
      writeFileSync(t.dirs.stateDir, "not a directory\n");
      try {
        await until(() => daemonPidsOf(t.dirs.runtimeDir).length === 0 || null, 10000, "the daemon's idle exit");
        const said = readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8")
          .split("\n")
          .filter((l) => l.includes("cannot write") && l.includes("state.db back"));
        expect(said).toHaveLength(1);
        expect(said[0]).toContain(t.dirs.stateDir);
      } finally {
        rmSync(t.dirs.stateDir, { force: true });
      }
    });

    test("state.db deleted between daemons: the next daemon stops the sandbox it has no record of", async () => {
      const port = nextPort++;
      await web(t, "forgotten", "slirp4netns", port);
      // The daemon's supervisor (rootless: the holder) stopped, so the daemon stays down meanwhile.
      const daemon = daemonPid(t.dirs.runtimeDir)!;
      const supervisor = Number(readFileSync(`/proc/${daemon}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      process.kill(supervisor, "SIGSTOP");
      try {
        process.kill(daemon, "SIGKILL");
        await until(() => daemonPid(t.dirs.runtimeDir) === undefined, 5000, "the daemon to die");
        for (const suffix of ["", "-wal", "-shm"]) rmSync(`${t.dirs.stateDir}/state.db${suffix}`, { force: true });
      } finally {
        process.kill(supervisor, "SIGCONT");
      }
      // Any command brings a daemon on a fresh database; requests wait for its start-up sweep.
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      expect(contextProcesses(t, /^(slirp4netns|httpd|busybox)/)).toEqual([]);
      expect(await fetchFromHost(t, port)).toBeNull();
      expect(readdirSync(`${t.dirs.runtimeDir}/pins`)).toEqual([]);
      const events = await t.burrowOk(["events", "--stream=false", "--format", "{{.Type}} {{.Status}}"]);
      expect(events).toContain("died");
      expect(await t.burrowOk(["system", "recover"])).toContain("nothing to recover");
    });
  });
}
