// port_handler=rootlesskit (the default): burrow's own forwarder inside the
// daemon, no process per sandbox. It connects to the sandbox's own address,
// never to its loopback (see src/ports/forwarder.ts). TCP clients not on
// loopback go in with their own address unless the user turned it off
// (src/ports/client-address.ts).
import { BurrowError, messageOf } from "../../errors.ts";
import type { PortRecord, Sandbox } from "../../state/sandboxes.ts";
import { takeHeldListener } from "../../accelerate/held.ts";
import { pidsInMountNs } from "../../sys/processes.ts";
import type { HeldPort, PortDriver } from "../driver.ts";
import { createForwarder, type ForwardedPort, type Forwarder } from "../forwarder.ts";
import { daemonConnector } from "../connector.ts";

export function builtinDriver(): PortDriver {
  let fwd: Forwarder | null = null;
  const live = new Map<string, ForwardedPort[]>();

  /** Ports whose host socket a sandboxed server held at restore (by handle): their socket inodes, until heldAtRestore hands them to the accelerator. */
  const heldInodes = new Map<ForwardedPort, number>();

  /** append: `port add` keeps the sandbox's other ports; setup and restore publish its whole set. */
  async function publish(s: Sandbox, specs: PortRecord[], append = false): Promise<PortRecord[]> {
    if (!s.runtime.pins || !s.runtime.address)
      throw new BurrowError(`cannot publish ports of ${s.name}: its network has no address to forward to`, { kind: "bad-input" });
    fwd ??= createForwarder({ connector: daemonConnector() });
    const handles: ForwardedPort[] = [];
    const out: PortRecord[] = [];
    try {
      for (const p of specs) {
        // This port's own: fwd.add awaits, and another publish may run meanwhile.
        let heldInode = 0;
        const takeHeld = () => {
          const t = takeHeldListener(pidsInMountNs(s.runtime.ino!.mnt), p.hostPort);
          heldInode = t?.inode ?? 0;
          return t?.fd ?? null;
        };
        const h = await fwd.add({
          hostIp: p.hostIp,
          hostPort: p.hostPort,
          protocol: p.protocol,
          netnsPath: s.runtime.pins.net,
          targetIp: s.runtime.address,
          targetIPv6: s.runtime.ipv6 === true,
          targetIp6: s.runtime.address6,
          targetPort: p.containerPort,
          keepClientAddress: s.runtime.keepClientAddress !== false,
          held: s.spec.accelerate && s.runtime.ino && p.protocol === "tcp" ? takeHeld : undefined,
        });
        if (h.held) heldInodes.set(h, heldInode);
        handles.push(h);
        out.push({ ...p, hostPort: h.hostPort });
      }
      // All ports' answers at once: the connector sets up each sandbox's side once.
      const answers = await Promise.all(handles.map((h) => h.sourceAddress));
      answers.forEach((a, i) => {
        out[i]!.sourceAddress = a.sourceAddress;
        out[i]!.sourceAddressWhy = a.sourceAddress === "client" ? undefined : (a.why ?? "turned off (source_ip=false)");
      });
    } catch (e) {
      for (const h of handles) {
        heldInodes.delete(h);
        h.close();
      }
      throw e;
    }
    live.set(s.id, append ? [...(live.get(s.id) ?? []), ...handles] : handles);
    return out;
  }

  return {
    // Before the network is set up: the connector thread starts beside the
    // namespaces and the network helper instead of after them, so the ports'
    // setup (which waits for its answer about client addresses) does not wait for it.
    async prepare(specs) {
      fwd ??= createForwarder({ connector: daemonConnector() });
      fwd.warm();
      return specs;
    },
    setup: (s, specs) => publish(s, specs),
    add: (s, specs) => publish(s, specs, true),
    async remove(s, ports) {
      const handles = live.get(s.id) ?? [];
      const gone = (h: ForwardedPort) => ports.some((p) => p.hostIp === h.spec.hostIp && p.hostPort === h.hostPort && p.protocol === h.spec.protocol);
      const errors: Error[] = [];
      for (const h of handles.filter(gone)) {
        heldInodes.delete(h);
        try {
          h.close();
        } catch (e) {
          errors.push(new Error(`closing host port ${h.hostPort}: ${messageOf(e)}`));
        }
      }
      live.set(
        s.id,
        handles.filter((h) => !gone(h)),
      );
      return errors;
    },
    async teardown(s) {
      const handles = live.get(s.id) ?? [];
      live.delete(s.id);
      const errors: Error[] = [];
      for (const h of handles) {
        heldInodes.delete(h);
        try {
          h.close();
        } catch (e) {
          errors.push(new Error(`closing host port ${h.hostPort}: ${messageOf(e)}`));
        }
      }
      return errors;
    },
    async lend(s, containerPort, family) {
      const tcp = (live.get(s.id) ?? []).filter((h) => h.spec.protocol === "tcp" && h.spec.targetPort === containerPort);
      // Published twice (two host addresses or ports): one listening socket cannot serve both, so neither is lent.
      if (tcp.length !== 1) return null;
      const h = tcp[0]!;
      if ((h.listenIp.includes(":") ? 6 : 4) !== family || !h.lend) return null;
      const lent = await h.lend();
      return lent && { ...lent, hostPort: h.hostPort };
    },
    heldAtRestore(s) {
      const out: HeldPort[] = [];
      for (const h of live.get(s.id) ?? []) {
        const inode = heldInodes.get(h);
        if (inode === undefined || !h.held) continue;
        heldInodes.delete(h);
        out.push({ inode, hostPort: h.hostPort, resume: h.held.resume });
      }
      return out;
    },
    async restore(s) {
      if (live.has(s.id) || !s.runtime.ports?.length) return;
      await publish(s, s.runtime.ports);
    },
  };
}
