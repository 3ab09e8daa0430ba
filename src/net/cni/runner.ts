// The __cni-runner role: runs CNI plugins inside the rootless CNI network
// namespace with a private mount namespace where /run and /var/lib/cni are
// per-user directories (podman v3's RootlessCNI.Do, reimplemented). Spawned
// by the daemon, so it starts inside the holder's user and mount namespaces;
// it starts single-threaded (SINGLE_THREAD_ENV), so unshare(CLONE_NEWNS) works.
//
// Mount order matters:
//   1. the runtime dir (pins!) and the CNI data dir (host-local's
//      allocations) are bound into the new /run at their own paths when they
//      live under /run, so CNI_NETNS stays valid and allocations land where
//      the daemon keeps them after /run is replaced;
//   2. /run/systemd is kept (many files symlink there);
//   3. resolv.conf: the rootless namespace's own (slirp4netns's DNS first),
//      bound over /etc/resolv.conf or, when that is a symlink into /run,
//      over its first target under /run (podman#10855, #11222), with a tmpfs
//      over /run/systemd/resolve so systemd-resolved's rewrites do not
//      unmount it (podman#10929);
//   4. the per-user CNI data dir over /var/lib/cni when the host has one;
//   5. the prepared run dir over /run, recursively.
import type * as v from "valibot";
import { existsSync, mkdirSync, readlinkSync, statSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join as pathJoin } from "node:path";
import { MS, bind, detachMountsBelow, mount } from "../../sys/mount.ts";
import { CLONE, join, unshare } from "../../sys/ns.ts";
import { parseMessage } from "../../messages.ts";
import { CniRunnerConfig, CniRunnerRequest } from "./messages.ts";
import { bunSpawner } from "./spawn.ts";

export type { CniRunnerConfig };

function under(dir: string, path: string): string {
  return pathJoin(dir, path.slice("/run".length));
}

function ensureFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (!existsSync(path)) writeFileSync(path, "", { mode: 0o600 });
}

/** The first path under /run that /etc/resolv.conf's symlink chain reaches, or /etc/resolv.conf. */
export function resolvTarget(): string {
  let path = "/etc/resolv.conf";
  for (let i = 0; i < 255; i++) {
    let link: string;
    try {
      link = readlinkSync(path);
    } catch {
      return path;
    }
    path = link.startsWith("/") ? link : pathJoin(dirname(path), link);
    if (path.startsWith("/run/")) return path;
  }
  throw new Error("too many symlinks while resolving /etc/resolv.conf");
}

/**
 * Moves this (single-threaded) process into the rootless CNI namespace with
 * its private mount namespace. Everything started afterwards (threads,
 * plugin processes) inherits both.
 */
function enterRootlessCni(cfg: CniRunnerConfig): void {
  join(cfg.netns, CLONE.NEWNET);
  unshare(CLONE.NEWNS);
  mount("none", "/", null, MS.REC | MS.PRIVATE);
  // Before the runtime dir is bound below /run with everything mounted in it.
  detachMountsBelow(cfg.detach);
  for (const dir of cfg.keep) {
    if (!dir.startsWith("/run/")) continue;
    const mirror = under(cfg.runDir, dir);
    mkdirSync(mirror, { recursive: true, mode: 0o700 });
    mount(dir, mirror, null, MS.BIND | MS.REC);
  }
  if (existsSync("/run/systemd")) {
    const dst = under(cfg.runDir, "/run/systemd");
    mkdirSync(dst, { recursive: true, mode: 0o755 });
    mount("/run/systemd", dst, null, MS.BIND | MS.REC);
  }
  let resolv = resolvTarget();
  if (resolv.startsWith("/run/systemd/resolve/")) {
    mount("tmpfs", under(cfg.runDir, "/run/systemd/resolve"), "tmpfs", MS.NOEXEC | MS.NOSUID | MS.NODEV);
  }
  if (resolv.startsWith("/run/")) {
    resolv = under(cfg.runDir, resolv);
    ensureFile(resolv);
  }
  if (existsSync(resolv)) bind(cfg.resolvConf, resolv);
  // host-local gets an explicit dataDir (cni/backend.ts); the bind keeps
  // any other plugin that writes /var/lib/cni off the host's copy.
  if (existsSync("/var/lib/cni") && statSync("/var/lib/cni").isDirectory()) bind(cfg.varDir, "/var/lib/cni");
  mount(cfg.runDir, "/run", null, MS.BIND | MS.REC);
}

/**
 * The __cni-runner role: enters the rootless CNI namespace once, then runs
 * CNI plugins for the daemon for as long as the namespace lives, one JSON
 * request per stdin line, one JSON reply per stdout line (RootlessNetns is
 * the client). One Bun start per namespace instead of one per plugin run
 * (measured: 10 plugin runs per bridge sandbox, ~5.9 ms of start each). New
 * pins never appear in this private mount namespace, so the daemon passes
 * CNI_NETNS as /proc/<daemon pid>/root/<pin>, which resolves in its own.
 * Exits when stdin closes (the daemon went away).
 */
export async function cniRunnerMain(argv: string[]): Promise<void> {
  try {
    enterRootlessCni(parseMessage(CniRunnerConfig, argv[0] ?? "", "the CNI runner's configuration"));
  } catch (e) {
    writeSync(2, `burrow: cannot enter the rootless CNI namespace: ${(e as Error).message}\n`);
    process.exit(1);
  }
  writeSync(1, `${JSON.stringify({ ready: true })}\n`);
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of Bun.stdin.stream()) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.trim()) continue;
      let req: v.InferOutput<typeof CniRunnerRequest>;
      try {
        req = parseMessage(CniRunnerRequest, line, "a CNI runner request");
      } catch (e) {
        // Without a valid id nobody waits for a reply: say it on stderr (the daemon shows it if we die).
        writeSync(2, `burrow: ${(e as Error).message}\n`);
        continue;
      }
      bunSpawner(req)
        .catch((e) => ({ exitCode: null, stdout: "", stderr: String((e as Error).message ?? e), timedOut: false }))
        .then((res) => process.stdout.write(`${JSON.stringify({ id: req.id, ...res })}\n`));
    }
  }
  process.exit(0);
}
