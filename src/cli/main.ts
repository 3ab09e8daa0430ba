// The CLI entry: citty for dispatch and help; one top-level error handler
// (STYLE.md #6) printing one human line, or {"error": ...} with --format json.
import { BurrowError, EXIT, messageOf } from "../errors.ts";
import { isSystemError, openFileLimit, raiseOpenFileLimit } from "../client/host.ts";
import { version } from "../version.ts";
import { main } from "./index.ts";
import { HelpRequested } from "./_args.ts";
import { quote } from "../quote.ts";
import { CLI_MIN_OPEN_FILES, openFilesRefusal } from "../open-files.ts";
import { EXIT_PIPE, QUIET_COMMANDS, guardOutput, isBrokenPipe } from "./_output.ts";
import type { CommandContext, CommandDef } from "citty";

// citty (it loads node:util) and the help texts are loaded when used: a
// `run` or `exec` needs neither (docs/decisions.md "A CLI that starts fast").
async function printHelp(...args: Parameters<typeof import("./_help.ts").printHelp>): Promise<void> {
  await (await import("./_help.ts")).printHelp(...args);
}

export async function cliMain(argv: string[]): Promise<void> {
  // A foreground run or exec guards its output when it prints (src/cli/_output.ts).
  if (!QUIET_COMMANDS.has(argv[0] ?? "")) guardOutput();
  // Bun raised the soft limit already; a hard one too low to work is said
  // now, in one line, not as an EMFILE half-way (src/open-files.ts).
  const files = raiseOpenFileLimit();
  if (files.hard < CLI_MIN_OPEN_FILES) return fail(new BurrowError(openFilesRefusal("burrow", files.hard, CLI_MIN_OPEN_FILES), { kind: "setup" }), argv);
  try {
    await cliCommand(argv);
  } catch (e) {
    if (isBrokenPipe(e)) process.exit(EXIT_PIPE);
    throw e;
  }
}

async function cliCommand(argv: string[]): Promise<void> {
  if (argv[0] === "--version" || argv[0] === "-v" || argv[0] === "version") {
    const v = version();
    process.stdout.write(`burrow version ${v.version} (commit ${v.commit}, built ${v.date})\n`);
    return;
  }
  if (!argv.length || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    await printHelp(main, undefined, "");
    return;
  }
  const subs = (main.subCommands ?? {}) as Record<string, unknown>;
  if (!argv[0]!.startsWith("-") && !(argv[0]! in subs)) {
    return fail(new BurrowError(`unknown command ${quote(argv[0])}: valid commands are ${Object.keys(subs).join(", ")}`, { kind: "bad-input" }), argv);
  }
  // A command group (network) without its subcommand: its usage, or the list.
  const group = (await (subs[argv[0]!] as () => Promise<any>)?.()) as { subCommands?: Record<string, unknown> } | undefined;
  if (group?.subCommands && (argv.length === 1 || argv[1] === "--help" || argv[1] === "-h")) {
    await printHelp(group as any, main, argv[0]!);
    if (argv.length === 1)
      fail(new BurrowError(`"burrow ${argv[0]}" needs a subcommand: ${Object.keys(group.subCommands).join(", ")}`, { kind: "bad-input" }), argv);
    return;
  }
  if (group?.subCommands && !argv[1]!.startsWith("-") && !(argv[1]! in group.subCommands)) {
    return fail(
      new BurrowError(`unknown command "${argv[0]} ${argv[1]}": valid ones are ${Object.keys(group.subCommands).join(", ")}`, { kind: "bad-input" }),
      argv,
    );
  }
  try {
    // run and exec read their flags from rawArgs themselves (parseStrict):
    // called directly, without citty's parse and dispatch.
    const direct = QUIET_COMMANDS.has(argv[0]!) ? (group as CommandDef | undefined) : undefined;
    if (direct?.run) await direct.run({ rawArgs: argv.slice(1), args: { _: [] } as unknown as CommandContext["args"], cmd: direct });
    else await (await import("citty")).runCommand(main, { rawArgs: argv });
  } catch (e) {
    if (e instanceof HelpRequested) {
      // Subcommand groups (network ...) resolve to the innermost command.
      let cmd: any = main;
      const path: string[] = [];
      for (const word of argv) {
        const next = (await (typeof cmd.subCommands === "function" ? cmd.subCommands() : cmd.subCommands))?.[word];
        if (!next) break;
        cmd = await (typeof next === "function" ? next() : next);
        path.push(word);
      }
      await printHelp(cmd, main, path.join(" "));
      return;
    }
    fail(e, argv);
  }
}

/** Out of file descriptors (EMFILE from node:fs or from src/sys) is said as what to do about it. */
function outOfFiles(e: unknown): BurrowError | null {
  if ((e as NodeJS.ErrnoException | undefined)?.code !== "EMFILE") return null;
  return new BurrowError(
    `burrow ran out of file descriptors (the open-file limit is ${openFileLimit().soft}, ulimit -n): raise it (ulimit -n 1024) and run burrow again`,
    { kind: "setup" },
  );
}

function fail(e: unknown, argv: string[]): void {
  if (isBrokenPipe(e)) process.exit(EXIT_PIPE);
  guardOutput();
  const json = argv.some((a, i) => (a === "--format" && argv[i + 1] === "json") || a === "--format=json");
  const err =
    e instanceof BurrowError ? e : (outOfFiles(e) ?? (isSystemError(e) ? new BurrowError(e.message) : new BurrowError(`internal error: ${messageOf(e)}`)));
  if (process.env.BURROW_LOG === "debug" && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: err.message, kind: err.kind, exitCode: err.exitCode })}\n`);
  else process.stderr.write(`Error: ${err.message}\n`);
  process.exitCode = err.exitCode ?? EXIT.burrow;
}
