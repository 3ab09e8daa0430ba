// The CLI's liveness bound (src/client/deadline.ts) against real unix-socket
// servers of the test's own: one that never answers anything, one whose
// request takes longer than the bound while its pings are answered.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { DaemonSilent, daemonTimeoutMs, withDaemonDeadline } from "../../src/client/deadline.ts";
import type { Paths } from "../../src/paths.ts";
import { flockHolder } from "../../src/sys/processes.ts";
import { LOCK, flock } from "../../src/sys/proc.ts";

let dir: string;
let p: Paths;
beforeEach(() => {
  dir = mkdtempSync(`${tmpdir()}/burrow-deadline-`);
  p = { rootless: true, uid: 1000, runtimeDir: dir, stateDir: dir, cniConfigDir: dir, networksDir: "/tmp/n", netavarkDir: "/tmp/nv" };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const post = (signal: AbortSignal, op: string) =>
  fetch(`http://burrow/${op}`, { unix: `${dir}/control.sock`, method: "POST", body: "{}", signal } as RequestInit).then((r) => r.text());

test("BURROW_DAEMON_TIMEOUT: seconds, default 8, anything else refused", () => {
  expect(daemonTimeoutMs({})).toBe(8000);
  expect(daemonTimeoutMs({ BURROW_DAEMON_TIMEOUT: "2.5" })).toBe(2500);
  for (const bad of ["0", "-1", "soon", "1e3", "100000"])
    expect(() => daemonTimeoutMs({ BURROW_DAEMON_TIMEOUT: bad })).toThrow("BURROW_DAEMON_TIMEOUT must be");
});

test("a listener that answers nothing: DaemonSilent after the bound, not later", async () => {
  process.env.BURROW_DAEMON_TIMEOUT = "0.4";
  // Accepts connections and never answers (what a SIGSTOPped daemon's backlog does).
  const server = Bun.listen({ unix: `${dir}/control.sock`, socket: { data() {} } });
  try {
    const t0 = Date.now();
    const err = await withDaemonDeadline(p, (signal) => post(signal, "list")).catch((e) => e);
    expect(err).toBeInstanceOf(DaemonSilent);
    expect(String(err.message)).toContain("has not answered on");
    expect(Date.now() - t0).toBeLessThan(2000);
  } finally {
    server.stop(true);
    delete process.env.BURROW_DAEMON_TIMEOUT;
  }
});

test("a request longer than the bound is not cut while pings are answered", async () => {
  process.env.BURROW_DAEMON_TIMEOUT = "0.3";
  let pings = 0;
  const server = Bun.serve({
    unix: `${dir}/control.sock`,
    async fetch(req) {
      if (new URL(req.url).pathname === "/ping") {
        pings++;
        return Response.json({ pid: 1 });
      }
      await Bun.sleep(1200);
      return new Response("done");
    },
  });
  try {
    expect(await withDaemonDeadline(p, (signal) => post(signal, "wait"))).toBe("done");
    expect(pings).toBeGreaterThan(2);
  } finally {
    server.stop(true);
    delete process.env.BURROW_DAEMON_TIMEOUT;
  }
});

test("flockHolder names the pid that holds a flock on the file", () => {
  const fd = openSync(`${dir}/daemon.lock`, "a");
  expect(flockHolder(fd)).toBeNull();
  flock(fd, LOCK.EX);
  const other = openSync(`${dir}/daemon.lock`, "a");
  expect(flockHolder(other)).toBe(process.pid);
  closeSync(other);
  closeSync(fd);
});
