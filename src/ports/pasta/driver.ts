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
    setup: async (_s, specs) => specs,
    // pesto(1) can change a running pasta's forwards, but only through the
    // control socket pasta was started with (-c, experimental, passt 2025
    // and later); burrow does not start pasta with one, and Debian 12's
    // pasta has neither (docs/decisions.md "Ports added to a running sandbox").
    liveRefusal:
      "--network pasta binds its published ports itself and cannot change them while it runs (burrow starts pasta without the control socket pesto needs); publish the port at `burrow run -p`, or use --network slirp4netns",
    teardown: async () => [],
  };
}
