// port_handler=slirp4netns: slirp4netns itself listens on the host, through
// its API socket (add_hostfwd/remove_hostfwd). It keeps the client's source
// address but supports no IPv6 host addresses, and with
// --disable-host-loopback (the default) UDP replies to a client on the host's
// loopback are dropped by libslirp (containers/podman#4586): use
// allow_host_loopback=true or the default handler for that. The forwards
// live inside the slirp4netns process, so a daemon restart needs no restore,
// and neither does a logout that removed the API socket: nothing but the
// teardown uses it after setup, and a restarted slirp4netns (restart
// policies) makes a new one.
import { lstatSync } from "node:fs";
import { isIPv6 } from "../../ip-syntax.ts";
import { listenAddress, probePort } from "../host-port.ts";
import { BurrowError, messageOf } from "../../errors.ts";
import { log } from "../../log.ts";
import type { PortRecord, Sandbox } from "../../state/sandboxes.ts";
import type { PortDriver } from "../driver.ts";
import { addHostFwd, listHostFwd, removeHostFwd } from "../../net/slirp4netns/api.ts";
import { isOurSlirp4netns } from "../../net/slirp4netns/process.ts";

function apiOf(s: Sandbox): { socket: string; pid: number; netns: string } {
  const b = s.runtime.backend as { apiSocket?: string; pid?: number; netns?: string } | undefined;
  if (!b?.apiSocket || !b.pid || !b.netns) throw new BurrowError(`sandbox ${s.name} has no slirp4netns API socket`, { kind: "internal" });
  return { socket: b.apiSocket, pid: b.pid, netns: b.netns };
}

export function slirp4netnsPortDriver(): PortDriver {
  const ids = new Map<string, number[]>();
  /** append: `port add` keeps the forwards the sandbox has. */
  async function publish(s: Sandbox, specs: PortRecord[], append = false): Promise<PortRecord[]> {
    const api = apiOf(s);
    const out: PortRecord[] = [];
    const added: number[] = [];
    try {
      for (const p of specs) {
        const hostPort = await probePort(p.hostIp, p.hostPort, p.protocol);
        const id = await addHostFwd(api.socket, {
          proto: p.protocol,
          host_addr: listenAddress(p.hostIp),
          host_port: hostPort,
          guest_addr: s.runtime.address!,
          guest_port: p.containerPort,
        }).catch((e) => {
          const msg = String(e?.message ?? e);
          if (/in use/i.test(msg))
            throw new BurrowError(`host port ${hostPort}/${p.protocol} is already in use on ${listenAddress(p.hostIp)}`, { kind: "port-in-use" });
          if (/permission denied/i.test(msg))
            throw new BurrowError(
              `cannot bind host port ${hostPort}/${p.protocol}: the port is privileged; allow it with \`sysctl net.ipv4.ip_unprivileged_port_start=${hostPort}\` or publish on a port of 1024 or more`,
              { kind: "port-privileged" },
            );
          throw e;
        });
        added.push(id);
        out.push({ ...p, hostPort });
      }
    } catch (e) {
      for (const id of added) {
        await removeHostFwd(api.socket, id).catch((err) =>
          log.warn(`rollback of ${s.name} (${s.id.slice(0, 12)}): removing slirp4netns forward ${id}: ${messageOf(err)}`),
        );
      }
      throw e;
    }
    ids.set(s.id, append ? [...(ids.get(s.id) ?? []), ...added] : added);
    return out;
  }

  function check(specs: PortRecord[]): void {
    const v6 = specs.find((p) => isIPv6(p.hostIp));
    if (v6)
      throw new BurrowError(
        `-p with IPv6 host address ${v6.hostIp} is not supported by port_handler=slirp4netns (slirp4netns forwards only IPv4): use port_handler=rootlesskit`,
        { kind: "unsupported-option" },
      );
  }

  return {
    check,
    sourceAddress: () => ({
      sourceAddress: "forwarder",
      sourceAddressWhy:
        "port_handler=slirp4netns: slirp4netns connects from its gateway address; the default port_handler=rootlesskit keeps TCP clients' addresses",
    }),
    setup: (s, specs) => publish(s, specs),
    add(s, specs) {
      check(specs);
      return publish(s, specs, true);
    },
    async remove(s, ports) {
      // By what slirp4netns lists, not by the ids this process noted: a
      // daemon restarted since (kill -9) no longer knows them, and the
      // forwards live on in slirp4netns.
      const api = apiOf(s);
      const errors: Error[] = [];
      const entries = await listHostFwd(api.socket);
      const removed = new Set<number>();
      for (const p of ports) {
        const e = entries.find((x) => x.proto === p.protocol && x.host_port === p.hostPort && x.host_addr === listenAddress(p.hostIp));
        if (!e) continue;
        await removeHostFwd(api.socket, e.id).then(
          () => removed.add(e.id),
          (err) => errors.push(err),
        );
      }
      ids.set(
        s.id,
        (ids.get(s.id) ?? []).filter((id) => !removed.has(id)),
      );
      return errors;
    },
    async teardown(s) {
      const list = ids.get(s.id) ?? [];
      ids.delete(s.id);
      const api = (() => {
        try {
          return apiOf(s);
        } catch {
          return null;
        }
      })();
      // With slirp4netns gone, its forwards are gone too.
      if (!api || !isOurSlirp4netns(api.pid, api.netns)) return [];
      // A logout removed the socket with the runtime dir. It is not made
      // again (docs/decisions.md): every teardown of these ports is followed
      // by the end of the slirp4netns that holds them, which the network's
      // teardown kills, so the forwards go with it.
      if (!lstatSync(api.socket, { throwIfNoEntry: false })?.isSocket()) {
        log.debug(`${s.name}: slirp4netns API socket ${api.socket} is gone; its forwards end with slirp4netns ${api.pid}`);
        return [];
      }
      const errors: Error[] = [];
      for (const id of list) await removeHostFwd(api.socket, id).catch((e) => errors.push(e));
      return errors;
    },
  };
}
