// Small synchronous helpers for library-level integration tests (run as root).
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";

/** Runs argv, throws with its stderr when it fails, returns stdout. */
export function sh(...argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A process's argv from /proc (empty once it is gone). */
export function argvOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

/** A path of a slirp4netns started ahead (src/net/slirp4netns/warm.ts): its pin dir and what is in it. */
export const AHEAD_PIN = /\/pins\/warm-[0-9a-f]{12}(\/|$)/;

/** The /etc files of the daemon's spare sandbox (src/daemon/create.ts spareAhead): its own while it runs. */
export const SPARE_FILE = /\/sandboxes\/\.spare(\/|$)/;

/**
 * A slirp4netns the daemon started ahead for its next sandbox that no
 * sandbox has adopted yet (src/net/slirp4netns/warm.ts): its argv names
 * RUNTIME_DIR/pins/warm-X/net, and that pin dir is there until a create
 * adopts it. Not any sandbox's: tests counting a sandbox's helpers skip it.
 */
export function startedAhead(argv: string[]): boolean {
  const pin = argv.find((a) => AHEAD_PIN.test(a) && a.endsWith("/net"));
  return pin !== undefined && existsSync(pin.slice(0, pin.lastIndexOf("/")));
}
