// consola with its reporters, for the CLI's messages (src/log.ts). An
// entrypoint of its own (scripts/build.ts), required by path on the first
// message: imported by src/log.ts, its 44 KB came with every module that
// logs, and the CLI's run loaded it without logging (issue 17).
export { createConsola } from "consola";
