// Rootful bridge networks: the CNI portmap plugin publishes the ports (DNAT
// rules in the daemon's network namespace), as podman v3 does. The ports go
// to the plugin in the ADD's runtimeConfig, so they are fixed before the
// network is set up; the rules go away with the CNI DEL.
//
// DNAT rules take a port without binding it, so nothing would stop a second
// sandbox (or any program) from claiming the same port. Like podman v3
// (which binds the ports and hands the sockets to conmon), the daemon binds
// each published port and holds the socket for the sandbox's life. Traffic
// never reaches these sockets while the rules are in place (DNAT happens
// first); a connection that does (rules flushed) is closed at once.
// Daemon main thread, daemon's network namespace.
import type { PortRecord, Sandbox } from "../../state/sandboxes.ts";
import type { PortDriver } from "../driver.ts";
import { holdPort, probePort, type HeldPort as Held } from "../host-port.ts";

function release(held: Held[]): void {
  for (const h of held) h.close();
}

export function portmapDriver(): PortDriver {
  const holds = new Map<string, Held[]>();

  async function holdAll(s: Sandbox, specs: PortRecord[]): Promise<void> {
    const held: Held[] = [];
    try {
      for (const p of specs) held.push(await holdPort(p));
    } catch (e) {
      release(held);
      throw e;
    }
    holds.set(s.id, held);
  }

  return {
    async prepare(specs) {
      // portmap does not pick free ports: binding each for a moment picks
      // one for a 0 and names a taken port clearly before anything is made.
      const out = [];
      for (const p of specs) out.push({ ...p, hostPort: await probePort(p.hostIp, p.hostPort, p.protocol) });
      return out;
    },
    async setup(s, specs) {
      await holdAll(s, specs);
      return specs;
    },
    async teardown(s) {
      release(holds.get(s.id) ?? []);
      holds.delete(s.id);
      return [];
    },
    async restore(s) {
      if (!holds.has(s.id) && s.runtime.ports?.length) await holdAll(s, s.runtime.ports);
    },
  };
}
