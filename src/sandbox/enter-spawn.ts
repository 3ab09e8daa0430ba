// Starts the enter step of a run, exec or unshare: the static C helper
// (src/sandbox/enter-helper.c) from a sealed memfd when this binary embeds
// one, else the Bun `__enter` role (src/sandbox/enter.ts). Both do the same
// joins, confinement and execve from the same validated EnterRequest; the
// helper spares the second Bun start (~6 ms) of every foreground run.
// docs/decisions.md "The enter helper" says why and when the fallback runs.
import { BurrowError } from "../errors.ts";
import { isSysError } from "../sys/libc.ts";
import { acceleratedFilter } from "../sys/seccomp.ts";
import { close } from "../sys/ns.ts";
import { pipe, writeAll } from "../sys/sockets.ts";
import { connectUnix } from "../sys/unix-socket.ts";
import { ROLES, roleArgv } from "../roles.ts";
import { cleanEnv, roleEnv, SELF_ARGV0 } from "../sys/env.ts";
import { sealedExecutable } from "../sys/memfd.ts";
import type { EnterRequest } from "../enter-messages.ts";
import { capabilityNumbers } from "./capabilities.ts";
import { log } from "../log.ts";

/** The helper's file name in the compiled binary (scripts/build.ts ENTER_HELPER_OUT). */
const ASSET = "burrow-enter-helper";

/**
 * The memfd's lowest fd number: above every fd a spawn hands down (stdio,
 * the daemon's pins and error pipe: at most 7), so none is dup2'd over it.
 */
const HELPER_MIN_FD = 64;

/** BURROW_ENTER_HELPER=0 forces the Bun role (tests of the fallback; a kill switch). */
function helperWanted(): boolean {
  return process.env.BURROW_ENTER_HELPER !== "0";
}

let helperFd: number | null | undefined;
let loading: Promise<number | null> | undefined;

/**
 * Loads the embedded helper into a sealed memfd, once per process. null when
 * this binary has none (a build without musl-gcc, a foreign-arch release
 * build, `bun run src/...`) or the kernel will not make one.
 */
export function prepareEnterHelper(): Promise<number | null> {
  if (helperFd !== undefined) return Promise.resolve(helperFd);
  loading ??= (async () => {
    const blob = helperWanted() ? Bun.embeddedFiles.find((f) => (f as Blob & { name: string }).name.startsWith(ASSET)) : undefined;
    try {
      helperFd = blob ? sealedExecutable(ASSET, await blob.bytes(), HELPER_MIN_FD) : null;
    } catch {
      helperFd = null;
    }
    return helperFd;
  })();
  return loading;
}

/** The helper's memfd if prepareEnterHelper has finished with one. */
export function readyEnterHelper(): number | null {
  return helperFd ?? null;
}

/**
 * The command prefix that runs a program (an absolute path) in a mount
 * namespace of its own, private all the way down (enter-helper.c -P), when
 * this process has the helper ready; util-linux's unshare(1) does the same
 * with one more exec and its shared libraries.
 */
export function privateMountsPrefix(): string[] | null {
  const fd = helperWanted() ? readyEnterHelper() : null;
  return fd === null ? null : [`/proc/self/fd/${fd}`, "-P", "--"];
}

/** The hex bit mask of capability names: the helper's -C. */
function capabilityMask(names: readonly string[]): string {
  let lo = 0;
  let hi = 0;
  for (const c of capabilityNumbers(names)) {
    if (c < 32) lo |= 1 << c;
    else hi |= 1 << (c - 32);
  }
  return (hi >>> 0).toString(16) + (lo >>> 0).toString(16).padStart(8, "0");
}

/** The helper's argv for `request` (its option letters: enter-helper.c's header); `accelerate`: the fds of -F and -S. */
export function helperArgs(request: EnterRequest, argv: string[], accelerate?: { filterFd: number; handoffFd: number }): string[] {
  const out: string[] = [];
  const opt = (flag: string, value: string | undefined) => {
    if (value !== undefined) out.push(flag, value);
  };
  opt("-U", request.session.user);
  opt("-M", request.session.mnt);
  opt("-n", request.net);
  opt("-u", request.uts);
  opt("-m", request.mnt);
  if (request.tty) out.push("-t");
  opt("-e", request.errorFd === undefined ? undefined : String(request.errorFd));
  opt("-w", request.workdir);
  opt("-c", request.cwd);
  if (request.user) opt("-i", `${request.user.uid}:${request.user.gid}:${request.user.groups.join(",")}`);
  if (request.caps) opt("-C", capabilityMask(request.caps));
  if (request.confine) out.push("-L");
  if (accelerate) out.push("-F", String(accelerate.filterFd), "-S", String(accelerate.handoffFd));
  return [...out, "--", ...argv];
}

/**
 * The helper's -R options for `request`: its argv words without the "--"
 * that ends them (the command is on its argv already).
 */
export function aheadWords(request: EnterRequest): string[] {
  const words = helperArgs(request, []).slice(0, -1);
  if (words.some((w) => w.includes("\0"))) throw new BurrowError("a path of the sandbox holds a NUL byte", { kind: "internal" });
  return words;
}

/**
 * What the helper's -R reads (enter-helper.c options_from_fd): the words'
 * length in decimal and a NUL, then the words, each NUL-terminated. The
 * length ends its wait, so the daemon can write the block while the CLI
 * still holds the pipe open.
 */
export function optionsBlock(words: readonly string[]): Buffer {
  const body = Buffer.from(words.map((w) => `${w}\0`).join(""));
  return Buffer.concat([Buffer.from(`${body.length}\0`), body]);
}

/** The enter helper spawned ahead of its sandbox (spawnEnterEarly). */
export interface EarlyEnter {
  child: Bun.Subprocess;
  /**
   * Sends `request`'s options: the helper joins the sandbox and execs the
   * command. null: the daemon wrote them into the pipe already (the
   * create's `entered`): only the CLI's end is closed.
   */
  go(request: EnterRequest | null): void;
  /** Calls it off: the helper exits 125 without a word. */
  cancel(): void;
}

/**
 * Spawns the enter helper before its sandbox exists (its -R mode): it waits
 * on a pipe for the options, which `go` sends once the daemon has answered,
 * so that the spawn (~0.7 ms) happens while the daemon makes the sandbox
 * (issue 17; docs/decisions.md "The enter step started ahead"). null when
 * this process has no helper ready: the caller spawns after the reply.
 * Not for --accelerate (its fds come with the reply) nor a pty.
 */
export function spawnEnterEarly(
  argv: string[],
  options: Omit<Bun.SpawnOptions.SpawnOptions<Bun.SpawnOptions.Writable, Bun.SpawnOptions.Readable, Bun.SpawnOptions.Readable>, "argv0" | "env"> & {
    env?: Record<string, string | undefined>;
    /** [read, write] ends of what the options come on (the FIFO of CreateRequest.enterFifo); taken over, also when null is returned. Default: a new pipe. */
    optionsPipe?: readonly [number, number];
  },
): EarlyEnter | null {
  const { env, optionsPipe, ...rest } = options;
  const fd = helperWanted() ? readyEnterHelper() : null;
  if (fd === null) {
    if (optionsPipe) for (const end of optionsPipe) close(end);
    return null;
  }
  const stdio = rest.stdio ?? ["inherit", "inherit", "inherit"];
  const [optionsRead, optionsWrite] = optionsPipe ?? pipe();
  let child: Bun.Subprocess;
  try {
    child = Bun.spawn([`/proc/self/fd/${fd}`, "-R", String(stdio.length), "--", ...argv], {
      ...rest,
      stdio: [...stdio, optionsRead] as typeof rest.stdio,
      argv0: "burrow-enter",
      env: cleanEnv(env),
    });
  } catch (e) {
    close(optionsWrite);
    throw e;
  } finally {
    close(optionsRead);
  }
  log.debug(`enter ${child.pid}: the C helper, started ahead`);
  let open = true;
  const cancel = () => {
    if (!open) return;
    open = false;
    close(optionsWrite);
  };
  return {
    child,
    go(request) {
      try {
        if (request) writeAll(optionsWrite, optionsBlock(aheadWords(request)));
      } catch (e) {
        // A helper gone already (a signal while the daemon answered) says so by its exit status.
        if (!isSysError(e, "EPIPE")) throw e;
      } finally {
        cancel();
      }
    },
    cancel,
  };
}

/**
 * Starts the enter helper as a keeper of one --accelerate listener (its -K
 * mode: enter-helper.c keep_listener): `listenerFd` becomes its fd 3. null
 * when this binary has no helper (nothing then keeps the listener through
 * a daemon's death: docs/accelerate.md).
 */
export function spawnListenerKeeper(listenerFd: number, env: Record<string, string>): Bun.Subprocess | null {
  const fd = readyEnterHelper();
  if (fd === null) return null;
  const child = Bun.spawn([`/proc/self/fd/${fd}`, "-K"], {
    stdio: ["ignore", "ignore", "ignore", listenerFd],
    argv0: "burrow-accel-keep",
    env: cleanEnv(env),
    detached: true,
  });
  child.unref();
  return child;
}

/**
 * The two fds an accelerated enter step gets: a pipe holding this machine's
 * filter program (-F) and a connection to the daemon's handoff socket that
 * already carries the token line (-S); the helper sends its listener there.
 * Ours are close-on-exec: the spawn dup2s them to `first` and `first + 1`.
 */
function accelerationFds(a: NonNullable<EnterRequest["accelerate"]>, first: number) {
  const [filterFd, filterWrite] = pipe();
  let handoffFd = -1;
  try {
    writeAll(filterWrite, acceleratedFilter());
    handoffFd = connectUnix(a.socket);
    writeAll(handoffFd, Buffer.from(`${a.token}\n`));
  } catch (e) {
    close(filterFd);
    if (handoffFd >= 0) close(handoffFd);
    throw new BurrowError(`cannot hand the --accelerate listener to the daemon: ${(e as Error).message}`, { kind: "internal" });
  } finally {
    close(filterWrite);
  }
  return {
    filterFd,
    handoffFd,
    child: { filterFd: first, handoffFd: first + 1 },
    /** After the spawn, which has its own copies by then. */
    close: () => {
      close(filterFd);
      close(handoffFd);
    },
  };
}

/**
 * Spawns the enter step for `request` and `argv`. `env` is the command's
 * extra environment (on top of process.env), as spawnRole takes it. The
 * helper is used when prepareEnterHelper has made it ready; a spawn it
 * cannot do (a kernel refusing to exec a memfd) falls back to the Bun role
 * for this process from then on.
 */
export function spawnEnterStep(
  request: EnterRequest,
  argv: string[],
  options: Omit<Bun.SpawnOptions.SpawnOptions<Bun.SpawnOptions.Writable, Bun.SpawnOptions.Readable, Bun.SpawnOptions.Readable>, "argv0" | "env"> & {
    env?: Record<string, string | undefined>;
  },
): Bun.Subprocess {
  const { env, ...rest } = options;
  const fd = helperWanted() ? readyEnterHelper() : null;
  if (request.accelerate && fd === null) {
    throw new BurrowError(
      "--accelerate needs burrow's enter helper, and this build has none (built without musl-gcc, or the kernel refused to run it from memory)",
      {
        kind: "bad-input",
      },
    );
  }
  if (fd !== null) {
    const accel = request.accelerate ? accelerationFds(request.accelerate, rest.stdio?.length ?? 3) : undefined;
    try {
      const stdio = accel ? [...(rest.stdio ?? ["inherit", "inherit", "inherit"]), accel.filterFd, accel.handoffFd] : rest.stdio;
      // /proc/self/fd/N is opened by the child's execve before close-on-exec
      // closes N: the helper runs and the command never sees the memfd.
      const child = Bun.spawn([`/proc/self/fd/${fd}`, ...helperArgs(request, argv, accel?.child)], {
        ...rest,
        ...(stdio ? { stdio: stdio as typeof rest.stdio } : {}),
        argv0: "burrow-enter",
        env: cleanEnv(env),
      });
      log.debug(`enter ${child.pid}: the C helper`);
      accel?.close();
      return child;
    } catch (e) {
      if (accel) {
        accel.close();
        throw e;
      }
      log.debug(`enter: the C helper would not start (${(e as Error).message}): the Bun role from now on`);
      helperFd = null;
      close(fd);
    }
  }
  log.debug("enter: the Bun __enter role");
  return Bun.spawn(roleArgv(ROLES.enter, [JSON.stringify(request), "--", ...argv]), { ...rest, argv0: SELF_ARGV0, env: roleEnv(env) });
}
