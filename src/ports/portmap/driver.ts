// Ports published by the network itself, fixed before it is set up:
//  - rootful bridge networks: the CNI portmap plugin (DNAT rules in the
//    daemon's network namespace, as podman v3), given the ports in the ADD's
//    runtimeConfig; the rules go away with the CNI DEL;
//  - pasta: pasta binds them (-t/-u) and releases them when it exits.
import type { PortDriver } from "../driver.ts";
import { probePort } from "../slirp4netns/driver.ts";

export function portmapDriver(): PortDriver {
  return {
    async prepare(specs) {
      // portmap neither picks free ports nor notices a taken one: binding
      // each for a moment does both, with the usual clear message.
      const out = [];
      for (const p of specs) out.push({ ...p, hostPort: await probePort(p.hostIp, p.hostPort, p.protocol) });
      return out;
    },
    setup: async (_s, specs) => specs,
    teardown: async () => [],
  };
}
