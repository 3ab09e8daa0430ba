// --network pasta: pasta binds the published host ports itself (-t/-u) and
// releases them when it exits. It cannot pick a random port nor tell which
// one is taken, so burrow binds each for a moment first (probePort), before
// pasta starts; nothing is left to do after. pasta's "all addresses" is a
// dual-stack [::] socket where the host has IPv6: the probe binds the same.
import type { PortDriver } from "../driver.ts";
import { forwarderListenAddress, probePort } from "../host-port.ts";

export function pastaPortDriver(): PortDriver {
  return {
    async prepare(specs) {
      const out = [];
      for (const p of specs) out.push({ ...p, hostPort: await probePort(p.hostIp, p.hostPort, p.protocol, forwarderListenAddress(p.hostIp)) });
      return out;
    },
    // pasta's own forwarding hands TCP and UDP clients not on loopback to the
    // sandbox with their own address (tested on Debian 12's 2023 pasta:
    // test/integration/source-ip.test.ts); loopback clients come from 127.0.0.1
    // (its splice path), and a client on the host's own address as pasta's
    // gateway. Nothing to set up: no pesto or control socket is needed for it.
    sourceAddress: () => ({ sourceAddress: "client" }),
    setup: async (_s, specs) => specs,
    teardown: async () => [],
  };
}
