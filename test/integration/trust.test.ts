// Trust nothing on the path to the daemon (issue 10 items 3 and 5): planted
// runtime directories, foreign listeners, symlinked files and zombie holders,
// against the built binary as the unprivileged test user.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { bunEval } from "../helpers/socket-peer.ts";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, testUser } from "../helpers/env.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping trust integration tests: ${why}`);

const NOBODY = 65534;

/** A fake daemon: counts connections and bytes, answers nothing. */
function fakeListener(path: string) {
  const seen = { connections: 0, bytes: 0 };
  const server = Bun.listen({
    unix: path,
    socket: {
      open() {
        seen.connections++;
      },
      data(_s, d) {
        seen.bytes += d.byteLength;
      },
    },
  });
  return { seen, stop: () => server.stop(true) };
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe.skipIf(!!why)("trust (rootless)", () => {
  let t: BurrowContext;
  /** A refusal must leave no holder or daemon either. */
  let refusal = true;
  beforeEach(async () => {
    t = await burrowContext("rootless");
    refusal = true;
  });
  afterEach(async () => {
    await t.dispose({ includeServices: refusal });
  });

  test("a 0777 runtime dir planted by another user with a fake socket: refused, nothing sent", async () => {
    // A shared XDG_RUNTIME_DIR (sticky, like /tmp) where another user made burrow/ first.
    const shared = `${t.dirs.root}/shared`;
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const planted = `${shared}/burrow`;
    mkdirSync(planted);
    chmodSync(planted, 0o777);
    chownSync(planted, NOBODY, NOBODY);
    const fake = fakeListener(`${planted}/control.sock`);
    try {
      chmodSync(`${planted}/control.sock`, 0o777);
      chownSync(`${planted}/control.sock`, NOBODY, NOBODY);
      const r = await t.burrow(["run", "-d", "--name", "victim", "--", "sleep", "60"], {
        env: { BURROW_RUNTIME_DIR: undefined, XDG_RUNTIME_DIR: shared, AWS_SECRET_ACCESS_KEY: "s3cr3t" },
      });
      expect(r.code).toBe(125);
      const line = oneLine(r.stderr);
      expect(line).toContain(`refusing to use ${planted}: it is owned by uid ${NOBODY}`);
      expect(line).not.toContain("s3cr3t");
      await Bun.sleep(100);
      expect(fake.seen).toEqual({ connections: 0, bytes: 0 });
    } finally {
      fake.stop();
    }
  });

  test("a runtime dir of the user's own but writable by others: refused with the chmod to fix it", async () => {
    chmodSync(t.dirs.runtimeDir, 0o777);
    const r = await t.burrow(["ps"]);
    expect(r.code).toBe(125);
    expect(oneLine(r.stderr)).toContain(
      `refusing to use ${t.dirs.runtimeDir}: it is writable by group or others (mode 0777); fix it with: chmod go-w ${t.dirs.runtimeDir}`,
    );
  });

  test("a state dir writable by others: the daemon refuses to start, and says why", async () => {
    chmodSync(t.dirs.stateDir, 0o777);
    const r = await t.burrow(["ps"]);
    expect(r.code).toBe(125);
    expect(oneLine(r.stderr)).toContain(`the burrow daemon did not start: refusing to use ${t.dirs.stateDir}: it is writable by group or others (mode 0777)`);
  });

  test("a socket in the user's dir with another user listening (SO_PEERCRED): refused, nothing sent", async () => {
    const sock = `${t.dirs.runtimeDir}/control.sock`;
    const fake = fakeListener(sock); // root listens
    try {
      chmodSync(sock, 0o600);
      chownSync(sock, testUser().uid, testUser().gid);
      const r = await t.burrow(["run", "--rm", "--network", "none", "--", "true"], { env: { AWS_SECRET_ACCESS_KEY: "s3cr3t" } });
      expect(r.code).toBe(125);
      expect(oneLine(r.stderr)).toMatch(
        new RegExp(`refusing to use ${sock}: the process listening on it \\(pid \\d+\\) runs as uid 0, not as you \\(uid ${testUser().uid}\\)`),
      );
      await Bun.sleep(100);
      // It connected to ask the kernel who listens, and sent nothing.
      expect(fake.seen.bytes).toBe(0);
    } finally {
      fake.stop();
    }
  });

  test("a symlinked daemon.log is refused before any holder starts", async () => {
    const log = `${t.dirs.runtimeDir}/daemon.log`;
    symlinkSync("/etc/hostname", log);
    lchownSync(log, testUser().uid, testUser().gid);
    const r = await t.burrow(["run", "--rm", "--network", "none", "--", "true"]);
    expect(r.code).toBe(125);
    expect(oneLine(r.stderr)).toContain(`refusing to use ${log}: it is a symbolic link`);
    // dispose({ includeServices: true }) fails the test if a holder was left.
  });

  test("a holder that died but is not reaped yet (a zombie) counts as dead", async () => {
    refusal = false;
    // sh forks a short sleep and execs a long one that never reaps it.
    const parent = t.spawn(["sh", "-c", "sleep 0.01 & exec sleep 30"]);
    let zombie = 0;
    for (let i = 0; i < 100 && !zombie; i++) {
      await Bun.sleep(20);
      const kids = readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, "utf8").trim().split(" ").filter(Boolean).map(Number);
      for (const k of kids) {
        try {
          const stat = readFileSync(`/proc/${k}/stat`, "utf8");
          if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) zombie = k;
        } catch {}
      }
    }
    expect(zombie).toBeGreaterThan(0);
    const stat = readFileSync(`/proc/${zombie}/stat`, "utf8");
    const startTime = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
    let userns = "";
    try {
      userns = readlinkSync(`/proc/${zombie}/ns/user`);
    } catch {
      userns = readlinkSync(`/proc/${parent.pid}/ns/user`);
    }
    const file = `${t.dirs.runtimeDir}/holder.json`;
    writeFileSync(file, JSON.stringify({ pid: zombie, startTime, userns, mntns: "mnt:[1]", map: "subid" }), { mode: 0o600 });
    chownSync(file, testUser().uid, testUser().gid);
    try {
      const r = await t.burrow(["run", "--rm", "--network", "none", "--", "echo", "ok"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("ok\n");
      expect(r.code).toBe(0);
    } finally {
      // The planted file names the host's user namespace: dispose() would
      // take every process in it for this context's and kill them all.
      if (readFileSync(file, "utf8").includes(`"pid":${zombie},`)) rmSync(file);
    }
    parent.kill("SIGKILL");
    await parent.exited;
  });

  test("a daemon whose create reply carries a target this burrow cannot use: one line, exit 125, and the sandbox is reported ended, not left created", async () => {
    // A daemon of another build answering as this one (same version record):
    // the target is checked where the CLI would spawn with it (src/cli/run.ts).
    const version = /version (\S+) \(commit (\S+),/.exec(await t.burrowOk(["--version"]))!;
    const fake = `
      const fs = require("node:fs");
      const [dir, version, commit] = process.argv.slice(-3);
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const sock = dir + "/control.sock";
      Bun.serve({
        unix: sock,
        async fetch(req) {
          const op = new URL(req.url).pathname.slice(1);
          const body = await req.text();
          fs.appendFileSync(dir + "/../fake-requests", op + " " + body + "\\n");
          if (op === "ping") return Response.json({ pid: process.pid });
          if (op === "create") return Response.json({ id: "f".repeat(64), name: "odd", enter: { session: {}, caps: ["CAP_NONE"] } });
          return Response.json({});
        },
      });
      fs.chmodSync(sock, 0o600);
      fs.writeFileSync(dir + "/daemon.version", JSON.stringify({ version, commit, pid: process.pid }), { mode: 0o600 });
      console.log("ready");
    `;
    const p = t.spawn(bunEval(fake, [t.dirs.runtimeDir, version[1]!, version[2]!]), { env: { BUN_BE_BUN: "1" } });
    const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("ready");
    const r = await t.burrow(["run", "--rm", "--network", "none", "--", "true"]);
    expect(r.code).toBe(125);
    expect(oneLine(r.stderr)).toMatch(
      /^Error: the daemon's reply to create is not what this burrow expects \(caps\.0: Invalid capability: Received "CAP_NONE"\): is an older daemon still running\?$/,
    );
    const seen = readFileSync(`${t.dirs.runtimeDir}/../fake-requests`, "utf8").trim().split("\n");
    const exited = seen.find((l) => l.startsWith("exited "));
    expect(exited).toBeDefined();
    expect(JSON.parse(exited!.slice("exited ".length))).toEqual({ id: "f".repeat(64), exitCode: 125 });
    // Nothing of the run is left in the runtime dir: no enter FIFO.
    expect(existsSync(`${t.dirs.runtimeDir}/enter`) ? readdirSync(`${t.dirs.runtimeDir}/enter`) : []).toEqual([]);
    p.kill();
    await p.exited;
  });
});
