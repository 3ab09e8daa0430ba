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
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, isIPv6, type Server } from "node:net";
import { bindError } from "../forwarder.ts";
import type { PortRecord, Sandbox } from "../../state/sandboxes.ts";
import type { PortDriver } from "../driver.ts";
import { probePort } from "../slirp4netns/driver.ts";

type Held = Server | UdpSocket;

/** Binds hostIp:hostPort and keeps it. */
async function holdPort(p: PortRecord): Promise<Held> {
  const address = p.hostIp || "0.0.0.0";
  try {
    if (p.protocol === "udp") {
      const s = createSocket(isIPv6(address) ? "udp6" : "udp4");
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.bind(p.hostPort, address, () => resolve());
      });
      return s;
    }
    const srv = createServer((c) => c.destroy());
    await new Promise<void>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(p.hostPort, address, () => resolve());
    });
    return srv;
  } catch (e) {
    throw bindError(e, p);
  }
}

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
