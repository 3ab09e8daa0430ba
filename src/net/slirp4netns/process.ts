// Spawning slirp4netns for a sandbox's network namespace and waiting until
// it has configured tap0 (podman's setupSlirp4netns + waitForSync).
//
// Runs in the daemon's namespaces (rootless: the holder's user and mount
// namespaces): slirp4netns inherits them, joins the sandbox netns by path
// itself (--netns-type=path) and keeps its own socket end in our netns.
import { closeSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import type { Subprocess } from "bun";
import { BurrowError, messageOf } from "../../errors.ts";
import { cleanEnv } from "../../sys/env.ts";
import { isRunning, stopHelper } from "../../sys/processes.ts";
import type { HelperTrack } from "../../state/helpers.ts";
import type { Slirp4netnsOptions } from "./options.ts";
import { checkSlirp4netnsFeatures, type Slirp4netnsFeatures } from "./probe.ts";

/** The fd number slirp4netns writes "1" to when the network is configured. */
const READY_FD = 3;

export interface Slirp4netnsStartOptions {
  /** A pinned network namespace file, e.g. /run/burrow/netns/<id>. */
  netnsPath: string;
  options: Slirp4netnsOptions;
  features: Slirp4netnsFeatures;
  /** Where slirp4netns's stdout and stderr go (truncated). Kept for `burrow doctor`. */
  logPath: string;
  /** --api-socket PATH (needed for port_handler=slirp4netns). */
  apiSocketPath?: string;
  tapName?: string;
  /** How long to wait for the ready byte. Default 5000 ms. */
  readyTimeoutMs?: number;
  /**
   * --enable-sandbox when slirp4netns has it (default true). The sandbox
   * pivot_roots into a tmpfs, which fails when / is a ramfs (podman turns it
   * off for no_pivot_root, containers/podman#8852).
   */
  sandbox?: boolean;
  /** The helper ledger's row for this process (written before the spawn; gets the pid at once). */
  track?: HelperTrack;
  /** What makes --enable-sandbox's mount namespace, before unshare(1): SetupContext.privateMounts. */
  privateMounts?: string[];
}

/**
 * The whole command to spawn. With --enable-sandbox, slirp4netns runs under
 * `unshare --mount --propagation private`, podman's workaround (libpod#4157,
 * for rootless-containers/slirp4netns#153) still needed with 1.2: the
 * sandbox makes only "/" private (not recursively), pivot_roots and detaches
 * the old root, and that unmount propagates to every shared peer. Measured
 * here: running it in our own mount namespace unmounted every netns pin under
 * the shared /run/netns (`ip netns` makes it shared), so the sandbox lost its
 * name and others' pins vanished. Podman avoids it because Go's
 * Unshareflags=CLONE_NEWNS also remounts / MS_REC|MS_PRIVATE in the child;
 * Bun.spawn cannot, so burrow's static enter helper (`o.privateMounts`, its
 * -P: ~0.6 ms less per start) or else util-linux's unshare(1) does it and
 * execs slirp4netns (same pid). Without either the sandbox is left off.
 * Pure but for the defaults (PATH lookup, geteuid).
 */
export function slirp4netnsCommand(
  o: Omit<Slirp4netnsStartOptions, "logPath" | "readyTimeoutMs">,
  unsharePath?: string | null,
  euid: number = process.geteuid?.() ?? 0,
): string[] {
  const sandbox = (o.sandbox ?? true) && o.features.enableSandbox;
  // Not uid 0 in our user namespace: no wrapper could make a mount
  // namespace (no CAP_SYS_ADMIN), so slirp4netns is run as is. burrow itself
  // always starts it as uid 0 (root, or the holder's user namespace); this
  // is for callers outside that setup. unshare(1) is looked up only when
  // the helper is not there (undefined: from PATH).
  const unshare = () => {
    const path = unsharePath === undefined ? Bun.which("unshare") : unsharePath;
    return path ? [path, "--mount", "--propagation", "private", "--"] : null;
  };
  const wrapper = !sandbox || euid !== 0 ? null : o.privateMounts?.length ? o.privateMounts : unshare();
  const args = slirp4netnsArgs({ ...o, sandbox: sandbox && (euid !== 0 || wrapper !== null) });
  return [...(wrapper ?? []), o.features.path, ...args];
}

/**
 * The slirp4netns command line (without the binary), in podman v3's order
 * (createBasicSlirp4netnsCmdArgs, then -c -r, then the namespace). Pure.
 */
export function slirp4netnsArgs(o: Omit<Slirp4netnsStartOptions, "logPath" | "readyTimeoutMs">): string[] {
  const { options, features } = o;
  const args: string[] = [];
  if (!options.allowHostLoopback && features.disableHostLoopback) args.push("--disable-host-loopback");
  if (features.mtu) args.push(`--mtu=${options.mtu}`);
  // --enable-sandbox: see slirp4netnsCommand for the mount namespace it needs.
  if ((o.sandbox ?? true) && features.enableSandbox) args.push("--enable-sandbox");
  if (features.enableSeccomp) args.push("--enable-seccomp");
  if (options.cidr !== undefined) args.push(`--cidr=${options.cidr}`);
  if (options.enableIPv6) args.push("--enable-ipv6");
  if (options.outboundAddr !== undefined) args.push(`--outbound-addr=${options.outboundAddr}`);
  if (options.outboundAddr6 !== undefined) args.push(`--outbound-addr6=${options.outboundAddr6}`);
  if (o.apiSocketPath !== undefined) args.push("--api-socket", o.apiSocketPath);
  // No -e (exit fd): podman ties slirp4netns's life to a pipe held by
  // conmon. burrow's daemon may be restarted (upgrade, crash, idle exit)
  // while sandboxes live on, and an exit fd would take their network with
  // it. The daemon records the pid and stops slirp4netns explicitly.
  args.push("--configure", `--ready-fd=${READY_FD}`);
  args.push("--netns-type=path", o.netnsPath, o.tapName ?? "tap0");
  return args;
}

export interface Slirp4netnsProcess {
  pid: number;
  /** Present in the process that spawned it; a restarted daemon has only the pid. */
  proc: Subprocess;
  logPath: string;
  apiSocketPath?: string;
  /** SIGTERM, then SIGKILL after 2 s; removes the API socket. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The last `n` non-empty lines of a log, joined into one line. A usage text
 * (printed after an argument error) is cut off: the error is above it.
 */
export function tailLines(text: string, n = 8): string {
  const usage = text.search(/^Usage: \S*slirp4netns/m);
  return (usage >= 0 ? text.slice(0, usage) : text)
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join("; ");
}

/**
 * The user-facing sentence for a slirp4netns that did not become ready.
 * Names the cause and the fix for the cases we know. Pure (tunMode is
 * passed in: the mode bits of /dev/net/tun, when known).
 */
export function slirp4netnsFailure(what: string, log: string, tunMode?: number): string {
  const said = tailLines(log);
  const saidPart = said ? ` (slirp4netns said: ${said})` : " (slirp4netns printed nothing)";
  if (/\/dev\/net\/tun"?\)?: Permission denied/.test(log)) {
    const mode = tunMode === undefined ? "" : ` is mode ${tunMode.toString(8).padStart(4, "0")} and`;
    return (
      `slirp4netns cannot open /dev/net/tun: the device${mode} must be readable and writable by every user; ` +
      `run "chmod 0666 /dev/net/tun" as root, as distributions ship it${saidPart}`
    );
  }
  if (/\/dev\/net\/tun"?\)?: No such file or directory/.test(log)) {
    return `slirp4netns cannot open /dev/net/tun: the tun device is missing; run "modprobe tun" as root${saidPart}`;
  }
  if (/cannot pivot_root|create_sandbox failed/.test(log)) {
    return `slirp4netns ${what}: its --enable-sandbox failed (a root filesystem without pivot_root support?); start it with the sandbox off${saidPart}`;
  }
  return `slirp4netns ${what}${saidPart}`;
}

function tunMode(): number | undefined {
  try {
    return statSync("/dev/net/tun").mode & 0o7777;
  } catch {
    return undefined;
  }
}

type ReadyOutcome = "ready" | "eof";

async function readReady(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<ReadyOutcome> {
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "eof";
    if (value.includes(0x31 /* "1" */)) return "ready";
  }
}

function waitExit(proc: Subprocess, ms: number): Promise<boolean> {
  return Promise.race([proc.exited.then(() => true), Bun.sleep(ms).then(() => false)]);
}

/**
 * Starts slirp4netns for `netnsPath` and resolves once tap0 is configured
 * (the ready byte, typically 4-9 ms). Validates options against the probed
 * features first. On early exit or timeout, kills it and throws BurrowError
 * with the last lines slirp4netns printed.
 *
 * The process is detached (own session, like podman's Setpgid: a Ctrl-C to
 * the daemon's group does not reach it) and unref'd, so it outlives a
 * daemon restart; keep `pid` to stop it later with stopSlirp4netnsPid.
 */
export async function startSlirp4netns(o: Slirp4netnsStartOptions): Promise<Slirp4netnsProcess> {
  checkSlirp4netnsFeatures(o.options, o.features, { publishesPorts: o.apiSocketPath !== undefined });
  const command = slirp4netnsCommand(o);
  if (o.apiSocketPath !== undefined) rmSync(o.apiSocketPath, { force: true }); // a stale one makes bind() fail
  const logFd = openSync(o.logPath, "w", 0o600);
  let proc: Subprocess<"ignore", number, number>;
  try {
    proc = Bun.spawn(command, {
      env: cleanEnv(o.track?.env),
      stdio: ["ignore", logFd, logFd, "pipe"],
      detached: true,
    });
  } catch (e) {
    throw new BurrowError(`cannot start ${o.features.path}: ${messageOf(e)}`, { cause: e, kind: "slirp4netns" });
  } finally {
    closeSync(logFd); // the child has its copy
  }
  try {
    o.track?.spawned(proc.pid);
  } catch (e) {
    // Nothing may run that nothing knows about: a pid we cannot record dies now.
    proc.kill("SIGKILL");
    throw new BurrowError(`cannot record slirp4netns (pid ${proc.pid}) in the state database: ${messageOf(e)}`, { cause: e, kind: "internal" });
  }
  const readyFd = proc.stdio[READY_FD] as unknown as number;
  const reader = Bun.file(readyFd).stream().getReader();
  const timeoutMs = o.readyTimeoutMs ?? 5000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    readReady(reader).catch(() => "eof" as const),
    new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs))),
  ]);
  clearTimeout(timer);
  // Bun reads through a dup of the fd: cancel closes the dup, we close ours.
  await reader.cancel().catch(() => {});
  try {
    closeSync(readyFd);
  } catch {}

  const stop = once(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      if (!(await waitExit(proc, 2000))) {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    }
    if (o.apiSocketPath !== undefined) rmSync(o.apiSocketPath, { force: true });
  });

  if (outcome !== "ready") {
    let what: string;
    if (outcome === "timeout") {
      what = `was not ready after ${timeoutMs} ms`;
    } else {
      // EOF on the ready pipe: it exited (or closed the fd). Give it a moment to be reaped.
      await waitExit(proc, 1000);
      what =
        proc.exitCode !== null
          ? `exited with code ${proc.exitCode} before it was ready`
          : proc.signalCode !== null
            ? `was killed by ${proc.signalCode} before it was ready`
            : "closed its ready pipe without writing to it";
    }
    await stop();
    let log = "";
    try {
      log = readFileSync(o.logPath, "utf8");
    } catch {}
    throw new BurrowError(slirp4netnsFailure(`for ${o.netnsPath} ${what}`, log, tunMode()), { kind: "slirp4netns" });
  }

  proc.unref();
  return { pid: proc.pid, proc, logPath: o.logPath, apiSocketPath: o.apiSocketPath, stop };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}

/**
 * Stops a slirp4netns this daemon (or a previous one) started, by pid, for a
 * daemon that has no Subprocess handle any more. Only signals the pid if
 * /proc/PID/cmdline is slirp4netns for `netnsPath`, so a reused pid is never
 * hit. Resolves when it is gone (or a zombie of a parent that is not us).
 */
export async function stopSlirp4netnsPid(pid: number, netnsPath: string, apiSocketPath?: string): Promise<void> {
  await stopHelper(pid, () => isOurSlirp4netns(pid, netnsPath));
  if (apiSocketPath !== undefined) rmSync(apiSocketPath, { force: true });
}

/** Whether `pid` is a live slirp4netns serving `netnsPath`. */
export function isOurSlirp4netns(pid: number, netnsPath: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return (argv[0] ?? "").endsWith("slirp4netns") && argv.includes(netnsPath) && isRunning(pid);
  } catch {
    return false;
  }
}
