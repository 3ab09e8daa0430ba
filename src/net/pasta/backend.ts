// The pasta network backend (passt's namespace mode): one pasta per sandbox,
// which also publishes the sandbox's ports itself (-t/-u), so its port
// driver only chooses host ports up front. Daemon main thread.
import type { NetworkBackend } from "../backend.ts";
import { firstHostIPv4 } from "../../dns/hosts.ts";
import type { NetworkMode } from "../mode.ts";
import { parsePastaOptions, type PastaOptions } from "./options.ts";
import { isPasta, pastaNameservers, probePasta, startPasta } from "./process.ts";

export interface PastaRecord extends Record<string, unknown> {
  pid: number;
}

function optionsOf(mode: NetworkMode): PastaOptions {
  const raw = mode.kind === "pasta" ? mode.options : "";
  return parsePastaOptions(raw ? raw.split(",") : []);
}

export const pastaBackend: NetworkBackend = {
  async validate(mode) {
    optionsOf(mode);
    await probePasta();
  },
  plan: () => ({ newNet: true }),
  async setup(mode, ctx) {
    const options = optionsOf(mode);
    const features = await probePasta();
    const track = ctx.helpers?.intend("pasta");
    const p = await startPasta({
      track,
      netnsPath: ctx.netns,
      options,
      features,
      ports: ctx.sandbox.runtime.ports ?? [],
      logPath: `${ctx.dir}/pasta.log`,
      pidPath: `${ctx.dir}/pasta.pid`,
    });
    const record: PastaRecord = { pid: p.pid };
    // pasta gives the sandbox the host's own address: /etc/hosts names the
    // sandbox there, as podman does.
    const address = options.addresses[0] ?? firstHostIPv4() ?? undefined;
    return { record, address, hostsAddress: address, nameservers: pastaNameservers(options, features) };
  },
  async teardown(record) {
    const pid = (record as PastaRecord).pid;
    if (pid > 0 && isPasta(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch (e) {
        return [e as Error];
      }
    }
    return [];
  },
  healthy: (record) => isPasta((record as PastaRecord).pid),
};
