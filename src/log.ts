import { createConsola } from "consola";

// One tagged logger (STYLE.md #6). Level from BURROW_LOG (debug|info|warn|error).
const levels: Record<string, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4, trace: 5 };
const level = levels[process.env.BURROW_LOG ?? ""] ?? 3;

export const log = createConsola({ level, stderr: process.stderr, stdout: process.stderr }).withTag("burrow");
