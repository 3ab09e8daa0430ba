// citty's defineCommand, which only returns its argument, without loading
// citty: citty imports node:util at its top, ~2 ms of every CLI start, and
// `run` and `exec` (src/cli/main.ts) are dispatched without citty.
import type { ArgsDef, CommandDef } from "citty";

export function defineCommand<const T extends ArgsDef = ArgsDef>(def: CommandDef<T>): CommandDef<T> {
  return def;
}
