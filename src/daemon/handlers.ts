// Operation table: one thin function per protocol op.
import type * as v from "valibot";
import { BurrowError } from "../errors.ts";
import { inspectView, psRow, sandboxStats } from "../inspect/sandbox.ts";
import type { Ops } from "../protocol.ts";
import type { SandboxService } from "./service.ts";
import { withRestartRow, withRestartView } from "./restart.ts";

type Args<K extends keyof typeof Ops> = v.InferOutput<(typeof Ops)[K]>;

export function handlers(svc: SandboxService) {
  return {
    ping: () => ({ pid: process.pid }),
    info: () => ({
      pid: process.pid,
      paths: svc.paths,
      session: svc.session,
      sandboxes: svc.active(),
      networkBackend: svc.backends.named(),
      rootlessNetns: svc.backends.sharedNamespace(),
      // The session's user namespace: podman's pause process's, joined (src/podman-pause.ts), or burrow's own.
      userNamespace: svc.paths.rootless ? (process.env.BURROW_HOLDER_MAP === "podman" ? "podman" : "burrow") : undefined,
    }),
    create: (a: Args<"create">) => svc.create(a),
    started: (a: Args<"started">) => svc.started(a.id, a.pid),
    // The CLI waits for the exit to be recorded, not for the network's release.
    exited: (a: Args<"exited">) => svc.exited(a.id, a.exitCode, { wait: false, pid: a.pid }),
    list: (a: Args<"list">) => svc.list(a.all).map((s) => withRestartRow(psRow(s, svc.health(s)), s)),
    inspect: (a: Args<"inspect">) => {
      const s = svc.store.find(a.name);
      return withRestartView(
        inspectView(s, {
          health: svc.health(s),
          networks: svc.inspectNetworks(s),
          acceleratedConnections: svc.accelerator.connections.get(s.id) ?? 0,
          egressLearned: s.spec.egress && s.status === "running" ? svc.egress.learnedCount(s.id) : 0,
        }),
        s,
      );
    },
    enter: (a: Args<"enter">) => {
      const s = svc.store.find(a.name);
      if (s.status !== "running") throw new BurrowError(`sandbox ${s.name} is not running (state: ${s.status})`, { kind: "not-running" });
      return { id: s.id, name: s.name, enter: svc.enterTarget(s) };
    },
    logs: (a: Args<"logs">) => ({ path: svc.logPath(a.name) }),
    port: (a: Args<"port">) => {
      const s = svc.store.find(a.name);
      // Like podman: a sandbox that is not running publishes nothing.
      return { id: s.id, name: s.name, ports: s.status === "running" ? (s.runtime.ports ?? []) : [] };
    },
    portAdd: (a: Args<"portAdd">) => svc.portAdd(a.name, a.ports),
    portRm: (a: Args<"portRm">) => svc.portRm(a.name, a.ports),
    stop: async (a: Args<"stop">) => {
      const s = await svc.stop(a.name, a.timeout);
      return { id: s.id, name: s.name };
    },
    rm: (a: Args<"rm">) => svc.rm(a.name, a.force, a.depend),
    start: async (a: Args<"start">) => {
      const s = await svc.restarts.start(a.name);
      return { id: s.id, name: s.name };
    },
    restart: async (a: Args<"restart">) => {
      const s = await svc.restarts.restart(a.name, a.timeout);
      return { id: s.id, name: s.name };
    },
    wait: (a: Args<"wait">) => svc.restarts.wait(a.name),
    events: (a: Args<"events">) =>
      svc.store
        .eventsSince(a.since)
        .map((e) => ({ seq: e.seq, time: e.time, type: e.type, id: e.sandbox_id, name: e.name, attributes: JSON.parse(e.attrs || "{}") })),
    stats: (a: Args<"stats">) => {
      const targets = a.names.length ? a.names.map((n) => svc.store.find(n)) : svc.list(false);
      return targets.map((s) => sandboxStats(s, svc.processes(s)));
    },
  };
}
