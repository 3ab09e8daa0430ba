// port_handler=rootlesskit (the default): burrow's own forwarder inside the
// daemon, no process per sandbox. It connects to the sandbox's own address,
// never to its loopback (see src/ports/forwarder.ts). TCP clients not on
// loopback go in with their own address unless the user turned it off
// (src/ports/client-address.ts).
import { BurrowError, messageOf } from "../../errors.ts";
import type { PortRecord, Sandbox } from "../../state/sandboxes.ts";
import type { PortDriver } from "../driver.ts";
import { createForwarder, type ForwardedPort, type Forwarder } from "../forwarder.ts";

export function builtinDriver(): PortDriver {
  let fwd: Forwarder | null = null;
  const live = new Map<string, ForwardedPort[]>();

  async function publish(s: Sandbox, specs: PortRecord[]): Promise<PortRecord[]> {
    if (!s.runtime.pins || !s.runtime.address)
      throw new BurrowError(`cannot publish ports of ${s.name}: its network has no address to forward to`, { kind: "bad-input" });
    fwd ??= createForwarder();
    const handles: ForwardedPort[] = [];
    const out: PortRecord[] = [];
    try {
      for (const p of specs) {
        const h = await fwd.add({
          hostIp: p.hostIp,
          hostPort: p.hostPort,
          protocol: p.protocol,
          netnsPath: s.runtime.pins.net,
          targetIp: s.runtime.address,
          targetIPv6: s.runtime.ipv6 === true,
          targetPort: p.containerPort,
          keepClientAddress: s.runtime.keepClientAddress !== false,
        });
        handles.push(h);
        const why = h.sourceAddress.sourceAddress === "client" ? undefined : (h.sourceAddress.why ?? "turned off (source_ip=false)");
        out.push({ ...p, hostPort: h.hostPort, sourceAddress: h.sourceAddress.sourceAddress, sourceAddressWhy: why });
      }
    } catch (e) {
      for (const h of handles) h.close();
      throw e;
    }
    live.set(s.id, handles);
    return out;
  }

  return {
    setup: publish,
    async teardown(s) {
      const handles = live.get(s.id) ?? [];
      live.delete(s.id);
      const errors: Error[] = [];
      for (const h of handles) {
        try {
          h.close();
        } catch (e) {
          errors.push(new Error(`closing host port ${h.hostPort}: ${messageOf(e)}`));
        }
      }
      return errors;
    },
    async restore(s) {
      if (live.has(s.id) || !s.runtime.ports?.length) return;
      await publish(s, s.runtime.ports);
    },
  };
}
