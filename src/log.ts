// One tagged logger (STYLE.md #6). Level from BURROW_LOG (debug|info|warn|error).
// consola costs ~15 ms to evaluate, which would double the CLI's start time:
// it is loaded on the first message, not at startup.
import type { ConsolaInstance } from "consola";

const levels: Record<string, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4, trace: 5 };
const level = levels[process.env.BURROW_LOG ?? ""] ?? 3;

let instance: ConsolaInstance | null = null;
function get(): ConsolaInstance {
  if (!instance) {
    const { createConsola } = require("consola") as typeof import("consola");
    // Colour only on a terminal and never with NO_COLOR (consola alone looks at stdout, not stderr).
    const colors = process.stderr.isTTY === true && !process.env.NO_COLOR;
    instance = createConsola({ level, stderr: process.stderr, stdout: process.stderr, formatOptions: { colors } }).withTag("burrow");
  }
  return instance;
}

type Fn = (message: unknown, ...args: unknown[]) => void;
const at =
  (min: number, name: "error" | "warn" | "info" | "debug"): Fn =>
  (message, ...args) => {
    if (level >= min) get()[name](message, ...args);
  };

export const log = { error: at(0, "error"), warn: at(1, "warn"), info: at(3, "info"), debug: at(4, "debug") };
