// One tagged logger (STYLE.md #6). Level from BURROW_LOG (debug|info|warn|error).
// consola costs ~15 ms to evaluate, which would double the CLI's start time:
// it is loaded on the first message, not at startup, and by path
// (src/log-consola.ts, an entrypoint of its own): a literal require was
// bundled into this module's chunks, loaded by every module that logs.
//
// The daemon logs through consola's core with a plain reporter of ours
// (`logPlainToFd`), not the full consola: importing "consola" makes
// process.stdout and process.stderr (Node streams, two more fds) and loads
// its fancy reporter, which cost the long-lived daemon ~6.5 MiB of RSS at
// its first message, a step that showed in the soak at whatever cycle the
// first warning came (issue 10). The core with this reporter: ~1.6 MiB
// standalone against ~11.7. The lines look the same in daemon.log.
import type { ConsolaInstance, ConsolaReporter, LogObject } from "consola";
import { nodeFs } from "./lazy-node.ts";
import { workerUrl } from "./workers.ts";

const levels: Record<string, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4, trace: 5 };
const level = levels[process.env.BURROW_LOG ?? ""] ?? 3;

/** Set by `logPlainToFd`: messages go to this fd through consola's core. */
let plainFd: number | null = null;

/**
 * Logs to `fd` (the daemon's stderr, its daemon.log) with consola's core and
 * a plain reporter, without touching process.stdout or process.stderr. Call
 * before the first message.
 */
export function logPlainToFd(fd: number): void {
  plainFd = fd;
}

function formatArg(a: unknown): string {
  if (typeof a === "string") return a;
  if (a instanceof Error) return a.stack ?? `${a.name}: ${a.message}`;
  return Bun.inspect(a);
}

/** What consola's fancy reporter writes without colours or a terminal width: "[tag]  WARN  message", "[tag] ℹ message". */
export function formatPlain(o: Pick<LogObject, "type" | "level" | "tag" | "args">): string {
  const message = o.args.map(formatArg).join(" ");
  const icons: Record<string, string> = { info: "ℹ", debug: "⚙", trace: "→", success: "✔", ready: "✔", start: "◐", fail: "✖", fatal: "✖" };
  const type = o.level < 2 ? ` ${o.type.toUpperCase()} ` : (icons[o.type] ?? o.type);
  return `${o.tag ? `[${o.tag}] ` : ""}${[type, message].filter(Boolean).join(" ")}\n`;
}

function writePlain(fd: number, o: Pick<LogObject, "type" | "level" | "tag" | "args">): void {
  try {
    nodeFs().writeSync(fd, formatPlain(o));
  } catch {
    // A full disk or a closed log must not take the daemon down with it.
  }
}

function plainReporter(fd: number): ConsolaReporter {
  return { log: (o) => writePlain(fd, o) };
}

type Logger = Pick<ConsolaInstance, "error" | "warn" | "info" | "debug">;
let instance: Logger | null = null;

/**
 * consola's createConsola from its entrypoint, or null in a build that does
 * not embed it (a test harness that left the entry out): a log call never
 * throws for that, it writes plain lines instead.
 */
function createConsolaFrom(entry: "log-consola.ts" | "log-consola-core.ts"): typeof import("./log-consola.ts").createConsola | null {
  try {
    return (require(workerUrl(entry)) as typeof import("./log-consola.ts")).createConsola;
  } catch {
    return null;
  }
}

/** Plain lines to `fd` (formatPlain), the reporter's own format, without consola. */
function plainLogger(fd: number): Logger {
  const line =
    (type: "error" | "warn" | "info" | "debug", lvl: number) =>
    (...args: unknown[]) =>
      writePlain(fd, { type, level: lvl, tag: "burrow", args });
  return { error: line("error", 0), warn: line("warn", 1), info: line("info", 3), debug: line("debug", 4) } as Logger;
}

function get(): Logger {
  if (!instance) {
    if (plainFd !== null) {
      const createConsola = createConsolaFrom("log-consola-core.ts");
      instance = createConsola ? createConsola({ level, reporters: [plainReporter(plainFd)] }).withTag("burrow") : plainLogger(plainFd);
    } else {
      const createConsola = createConsolaFrom("log-consola.ts");
      // Colour only on a terminal and never with NO_COLOR (consola alone looks at stdout, not stderr).
      instance = createConsola
        ? createConsola({
            level,
            stderr: process.stderr,
            stdout: process.stderr,
            formatOptions: { colors: process.stderr.isTTY === true && !process.env.NO_COLOR },
          }).withTag("burrow")
        : plainLogger(2);
    }
  }
  return instance;
}

/** Has anything been logged (consola made, with process.stderr)? */
export function logMade(): boolean {
  return instance !== null;
}

type Fn = (message: unknown, ...args: unknown[]) => void;
const at =
  (min: number, name: "error" | "warn" | "info" | "debug"): Fn =>
  (message, ...args) => {
    if (level >= min) get()[name](message, ...args);
  };

export const log = { error: at(0, "error"), warn: at(1, "warn"), info: at(3, "info"), debug: at(4, "debug") };
