// The daemon's side of SO_PEERCRED (issue 10 item 3, src/daemon/peers.ts):
// a connection to the control socket from a process of another uid is cut
// off, and no request is served while one is open, whatever route it asks
// for. The user's own commands work before, during and after.
//
// "Another uid" is 65534, which both a rootless daemon (where it is an
// unmapped uid, like every other user and host root) and a rootful one see
// as 65534. It reaches the socket two ways:
// - the misconfiguration itself: the directories on the way searchable by
//   others and the socket writable by them (restored afterwards). The CLI
//   refuses such a socket (src/client/trust.ts), so the user's commands run
//   only once it is back to 0600;
// - for "during": uid 65534 with CAP_DAC_OVERRIDE (setpriv --ambient-caps),
//   which reaches the 0600 socket while the user's CLI keeps working. Its
//   uid is still 65534, and that is all SO_PEERCRED tells the daemon.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, testUser, USER_PATH } from "../helpers/env.ts";
import { bunEval, PEER, pipelined } from "../helpers/socket-peer.ts";
import { until } from "../helpers/until.ts";
import type { Mode } from "../helpers/run.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping peer credential integration tests: ${why}`);

const NOBODY = 65534;

interface Foreign {
  dacOverride?: boolean;
}

/** argv running `cmd` as uid/gid 65534 with no groups, in the context's netns when rootful. */
function asNobody(t: BurrowContext, cmd: string[], o: Foreign = {}): string[] {
  const caps = o.dacOverride ? ["--inh-caps=+dac_override", "--ambient-caps=+dac_override"] : [];
  const inNetns = t.netns ? ["nsenter", `--net=${t.netns.path}`, "--"] : [];
  return [...inNetns, "setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...caps, "--", ...cmd];
}

/** A command as uid 65534, to completion. */
async function runAsNobody(t: BurrowContext, cmd: string[], o: Foreign = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn(asNobody(t, cmd, o), { env: { PATH: USER_PATH, BUN_BE_BUN: "1" }, cwd: "/", stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode ?? 128, stdout, stderr };
}

/** curl of one control request as uid 65534: `%{http_code}` last on stdout. */
function curlAsNobody(t: BurrowContext, sock: string, op: string, body: unknown, o: Foreign = {}) {
  return runAsNobody(
    t,
    ["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", sock, "-H", "content-type: application/json", "-d", JSON.stringify(body), `http://burrow/${op}`],
    o,
  );
}

/** What a refused request must not change, as the user's own CLI reports it. */
async function state(t: BurrowContext): Promise<string> {
  const sandboxes = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])) as Array<{ Id: string; State: string }>;
  const networks = JSON.parse(await t.burrowOk(["network", "ls", "--format", "json"])) as Array<{ name: string }>;
  return JSON.stringify({ sandboxes: sandboxes.map((s) => [s.Id, s.State]), networks: networks.map((n) => n.name).sort() });
}

/** `o+x` on every directory from `top` down to the socket's, and the socket 0666; returns the undo. */
function openToOthers(sock: string, top: string): () => void {
  const dirs: string[] = [];
  for (let d = dirname(sock); ; d = dirname(d)) {
    dirs.push(d);
    if (d === top || d === "/") break;
  }
  const modes = [sock, ...dirs].map((p) => [p, statSync(p).mode & 0o7777] as const);
  try {
    for (const d of dirs) chmodSync(d, (statSync(d).mode & 0o7777) | 0o001);
    chmodSync(sock, 0o666);
  } catch (e) {
    for (const [p, m] of modes) chmodSync(p, m);
    throw e;
  }
  return () => {
    for (const [p, m] of modes) chmodSync(p, m);
  };
}

/** The daemon log's lines about connections it cut off. */
function disconnects(t: BurrowContext): string[] {
  return readFileSync(`${t.dirs.runtimeDir}/daemon.log`, "utf8")
    .split("\n")
    .filter((l) => l.includes("disconnecting a connection to the control socket"));
}

/** A peer program (PEER) as uid 65534 with CAP_DAC_OVERRIDE, once it has connected. */
async function foreignPeer(t: BurrowContext, sock: string, send = "") {
  const p = Bun.spawn(asNobody(t, bunEval(PEER, [sock, JSON.stringify(send)]), { dacOverride: true }), {
    env: { PATH: USER_PATH, BUN_BE_BUN: "1" },
    cwd: "/",
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let stdout = "";
  const pump = (async () => {
    for await (const chunk of p.stdout) stdout += new TextDecoder().decode(chunk);
  })();
  const stderr = new Response(p.stderr).text();
  await until(() => stdout.includes("connected") || p.exitCode !== null, 10_000, "the peer to connect");
  if (!stdout.includes("connected")) throw new Error(`the peer did not connect: ${stdout}${await stderr}`);
  return {
    pid: p.pid,
    /** What it printed, once it has exited. */
    async result(): Promise<{ code: number; stdout: string; stderr: string }> {
      await p.exited;
      await pump;
      return { code: p.exitCode ?? 128, stdout, stderr: await stderr };
    },
  };
}

const REFUSAL = (pid: number, sock: string) =>
  `Error: refused: another user's process (pid ${pid}, uid ${NOBODY} as the daemon sees it) connected to the control socket ${sock}; it was cut off, and this request is refused with it (the daemon cannot tell which connection sent it); make sure nobody else can reach the socket`;

for (const mode of ["rootless", "rootful"] as Mode[]) {
  describe.skipIf(!!why)(`the daemon serves only its own user's connections (SO_PEERCRED, ${mode})`, () => {
    let t: BurrowContext;
    let sock: string;
    beforeEach(async () => {
      t = await burrowContext(mode);
      await t.burrowOk(["network", "create", "keep1"]); // starts the daemon too
      sock = `${t.dirs.runtimeDir}/control.sock`;
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("uid 65534 on a socket opened to others: a network create and a ps are cut off and change nothing", async () => {
      const before = await state(t);
      // Rootless the runtime dir sits in the test user's /run/user/UID; rootful in /run.
      const restore = openToOthers(sock, mode === "rootless" ? testUser().runtimeDir : dirname(t.dirs.root));
      let create: Awaited<ReturnType<typeof curlAsNobody>>;
      let list: Awaited<ReturnType<typeof curlAsNobody>>;
      try {
        create = await curlAsNobody(t, sock, "networkCreate", { name: "evil" });
        list = await curlAsNobody(t, sock, "list", { all: true });
      } finally {
        restore();
      }
      // 52: connected (the socket was reachable), and the daemon answered
      // nothing before it cut the connection off.
      expect({ code: create.code, stdout: create.stdout }).toEqual({ code: 52, stdout: "\n000" });
      expect({ code: list.code, stdout: list.stdout }).toEqual({ code: 52, stdout: "\n000" });
      expect(disconnects(t)).toHaveLength(2);
      for (const line of disconnects(t)) expect(line).toMatch(new RegExp(`from pid \\d+: it runs as uid ${NOBODY}, not as this daemon's uid 0$`));
      // Nothing changed, and the user's own commands work.
      expect(await state(t)).toBe(before);
      expect(await state(t)).not.toContain("evil");
      const r = await t.burrow(["run", "--rm", "--network", "none", "--", "echo", "ok"]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: "ok\n", stderr: "" });
      if (mode === "rootless") {
        // Host root is an unmapped uid in the holder's user namespace too.
        const res = await fetch("http://burrow/list", { unix: sock, method: "POST", body: "{}" } as RequestInit).then(
          async (x) => `${x.status} ${await x.text()}`,
          (e: Error) => `failed: ${e.message}`,
        );
        expect(res).toStartWith("failed: ");
        expect(disconnects(t)).toHaveLength(3);
      }
    });

    test("during: an idle connection of uid 65534 is cut off at the user's next request, which is refused in one line; then everything works", async () => {
      const before = await state(t);
      const idle = await foreignPeer(t, sock);
      const refused = await t.burrow(["ps"]);
      expect(refused.stderr.trim()).toBe(REFUSAL(idle.pid, sock));
      expect(refused.code).toBe(125);
      const idleEnd = await idle.result();
      expect(idleEnd.stdout).toBe("connected\nclosed 0\n");
      // The connection is gone: the user's commands work again at once.
      expect(await state(t)).toBe(before);
      expect(disconnects(t)).toHaveLength(1);
    });

    // A logout removes a user's runtime dir; a rootful one has none.
    if (mode === "rootless")
      test("after a logout's rm -rf the daemon's new socket is checked too", async () => {
        rmSync(t.dirs.runtimeDir, { recursive: true, force: true }); // what systemd-logind does at logout
        const before = await state(t); // waits for the daemon to make its socket again
        const idle = await foreignPeer(t, sock);
        const refused = await t.burrow(["network", "create", "during"]);
        expect(refused.stderr.trim()).toBe(REFUSAL(idle.pid, sock));
        expect((await idle.result()).stdout).toBe("connected\nclosed 0\n");
        expect(await state(t)).toBe(before);
      });

    test("during: pipelined requests of uid 65534 run none of them; the user's commands before and after work", async () => {
      const before = await state(t);
      const p = await foreignPeer(
        t,
        sock,
        pipelined([
          { op: "networkCreate", body: { name: "evil1" } },
          { op: "networkCreate", body: { name: "evil2" } },
          { op: "list", body: { all: true } },
        ]),
      );
      const end = await p.result();
      expect(end.stdout).toBe("connected\nclosed 0\n");
      expect(disconnects(t)).toHaveLength(1);
      expect(await state(t)).toBe(before);
      await t.burrowOk(["network", "create", "after"]);
      expect(await state(t)).toContain('"after"');
      await t.burrowOk(["network", "rm", "after"]);
    });
  });
}
