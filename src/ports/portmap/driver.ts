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
//
// A port published on [::1] only is no DNAT's to serve (src/port-dnat.ts):
// the registry gives it to its builtin forwarder (`forwards`), which listens
// there and connects from inside the sandbox to its own address, IPv6 where
// it has one, as for rootless sandboxes.
// Daemon main thread, daemon's network namespace.
import type { PortRecord, Sandbox } from "../../state/sandboxes.ts";
import { servedByDnat } from "../../port-dnat.ts";
import type { PortDriver } from "../driver.ts";
import { holdPort, probePort, type HeldPort as Held } from "../host-port.ts";

function release(held: Held[]): void {
  for (const h of held) h.close();
}

/** How long a random port picked by prepare() stays held for its create's setup(). */
const PICKED_MS = 30_000;

const keyOf = (p: Pick<PortRecord, "hostIp" | "hostPort" | "protocol">) => `${p.protocol} ${p.hostIp || "0.0.0.0"} ${p.hostPort}`;

export function portmapDriver(): PortDriver {
  const holds = new Map<string, Held[]>();
  /**
   * Random host ports (-p ::80) picked by prepare() and kept bound until
   * setup() adopts them. Picking by binding for a moment and releasing let
   * the kernel hand the same port to a concurrent create's listener (the
   * builtin forwarder binds port 0 too) before this one held it: seen as
   * "host port N is already in use" with 20 creates at once.
   */
  const picked = new Map<string, { held: Held; at: number }>();

  function dropStalePicks(): void {
    // A create that fails between prepare and setup gives its picks back
    // through its rollback (teardown below, src/daemon/create.ts); this
    // expiry is only the backstop for a pick nothing ever claims.
    for (const [key, p] of picked) {
      if (Date.now() - p.at > PICKED_MS) {
        p.held.close();
        picked.delete(key);
      }
    }
  }

  async function holdAll(s: Sandbox, specs: PortRecord[]): Promise<void> {
    const held: Held[] = [];
    try {
      for (const p of specs) {
        const pick = picked.get(keyOf(p));
        picked.delete(keyOf(p));
        held.push(pick ? pick.held : await holdPort(p));
      }
    } catch (e) {
      release(held);
      throw e;
    }
    holds.set(s.id, held);
  }

  return {
    async prepare(specs) {
      // portmap does not pick free ports. A given port is bound for a moment
      // to name a taken one clearly before anything is made; a 0 is bound
      // and kept (see picked) so the port chosen stays ours.
      dropStalePicks();
      const out: PortRecord[] = [];
      try {
        for (const p of specs) {
          if (!servedByDnat(p)) {
            // The forwarder binds it at setup (a 0 there picks a free port): nothing to hold meanwhile.
            out.push(p.hostPort !== 0 ? { ...p, hostPort: await probePort(p.hostIp, p.hostPort, p.protocol) } : p);
            continue;
          }
          if (p.hostPort !== 0) {
            out.push({ ...p, hostPort: await probePort(p.hostIp, p.hostPort, p.protocol) });
            continue;
          }
          const held = await holdPort(p);
          const addr = held.address();
          const chosen = { ...p, hostPort: typeof addr === "object" && addr ? addr.port : 0 };
          picked.set(keyOf(chosen), { held, at: Date.now() });
          out.push(chosen);
        }
      } catch (e) {
        for (const p of out) {
          picked.get(keyOf(p))?.held.close();
          picked.delete(keyOf(p));
        }
        throw e;
      }
      return out;
    },
    // DNAT (the portmap plugin, netavark's rules) rewrites only the destination.
    sourceAddress: () => ({ sourceAddress: "client" }),
    forwards: (p) => !servedByDnat(p),
    async setup(s, specs) {
      await holdAll(s, specs);
      return specs;
    },
    async teardown(s) {
      release(holds.get(s.id) ?? []);
      holds.delete(s.id);
      for (const p of s.runtime.ports ?? []) {
        // A rollback before setup() adopted its picks.
        picked.get(keyOf(p))?.held.close();
        picked.delete(keyOf(p));
      }
      return [];
    },
    async restore(s) {
      if (holds.has(s.id) || !s.runtime.ports?.length) return;
      await holdAll(s, s.runtime.ports);
    },
  };
}
