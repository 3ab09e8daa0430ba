// The command table: one citty command per file, loaded lazily (STYLE.md #5).
import { defineCommand } from "./_command.ts";
import { version } from "../version.ts";

export const main = defineCommand({
  meta: { name: "burrow", version: version().version, description: "Rootless network sandboxes, port publishing and bridge networks" },
  subCommands: {
    run: () => import("./run.ts").then((m) => m.default),
    exec: () => import("./exec.ts").then((m) => m.default),
    ps: () => import("./ps.ts").then((m) => m.default),
    inspect: () => import("./inspect.ts").then((m) => m.default),
    stop: () => import("./stop.ts").then((m) => m.default),
    start: () => import("./start.ts").then((m) => m.default),
    restart: () => import("./restart.ts").then((m) => m.default),
    wait: () => import("./wait.ts").then((m) => m.default),
    generate: () => import("./generate.ts").then((m) => m.default),
    rm: () => import("./rm.ts").then((m) => m.default),
    logs: () => import("./logs.ts").then((m) => m.default),
    port: () => import("./port.ts").then((m) => m.default),
    unshare: () => import("./unshare.ts").then((m) => m.default),
    info: () => import("./info.ts").then((m) => m.default),
    network: () => import("./network.ts").then((m) => m.default),
    doctor: () => import("./doctor.ts").then((m) => m.default),
    system: () => import("./system.ts").then((m) => m.default),
    events: () => import("./events.ts").then((m) => m.default),
    stats: () => import("./stats.ts").then((m) => m.default),
    completion: () => import("./completion.ts").then((m) => m.default),
  },
});
