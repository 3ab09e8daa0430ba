// consola's core, for the daemon's plain lines (src/log.ts logPlainToFd):
// an entrypoint of its own for the reason src/log-consola.ts gives.
export { createConsola } from "consola/core";
