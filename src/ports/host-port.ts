// Host ports on the daemon's main thread (host network namespace): binding
// one for a moment to choose or check it (slirp4netns, pasta), holding one
// for a sandbox's life (portmap), and the sentence a failed bind becomes.
import { readFileSync } from "node:fs";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { isIPv6 } from "../ip-syntax.ts";
import { BurrowError } from "../errors.ts";
import type { PortRecord } from "../state/sandboxes.ts";

/** "" means every IPv4 address, like podman's default `-p 8080:80`; also how messages name it. */
export function listenAddress(hostIp: string): string {
  return hostIp === "" ? "0.0.0.0" : hostIp;
}

let ipv6: boolean | undefined;
/** Whether this network namespace has IPv6 at all (any address, ::1 included), read once. */
export function hostHasIPv6(): boolean {
  if (ipv6 === undefined) {
    try {
      ipv6 = readFileSync("/proc/net/if_inet6", "utf8").trim() !== "";
    } catch {
      ipv6 = false;
    }
  }
  return ipv6;
}

/**
 * Where the builtin forwarder listens: "" (all addresses) is "::" as a
 * dual-stack socket where the host has IPv6, so `-p 8080:80` answers on
 * [::1] and the host's IPv6 addresses as podman 5's does, and 0.0.0.0 where it has none.
 */
export function forwarderListenAddress(hostIp: string, hasIPv6 = hostHasIPv6()): string {
  return hostIp === "" && hasIPv6 ? "::" : listenAddress(hostIp);
}

/** Turns a bind/listen failure into the sentence a user needs. */
export function bindError(e: unknown, spec: Pick<PortRecord, "hostIp" | "hostPort" | "protocol">): BurrowError {
  const code = typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "";
  const where = listenAddress(spec.hostIp);
  const what = `${spec.hostPort}/${spec.protocol}`;
  switch (code) {
    case "EADDRINUSE":
      return new BurrowError(`host port ${what} is already in use on ${where}`, { cause: e, kind: "port-in-use" });
    case "EACCES":
      return new BurrowError(
        `cannot bind host port ${what} on ${where}: the port is privileged (below net.ipv4.ip_unprivileged_port_start); ` +
          `allow it with \`sysctl net.ipv4.ip_unprivileged_port_start=${spec.hostPort}\` or publish on a port of 1024 or more`,
        { cause: e, kind: "port-privileged" },
      );
    case "EADDRNOTAVAIL":
    case "EINVAL":
      return new BurrowError(`cannot bind host port ${what}: ${where} is not an address of this host`, { cause: e, kind: "bad-input" });
    default:
      return new BurrowError(`cannot bind host port ${what} on ${where}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/**
 * Binds hostIp:port (0 = any free port) for a moment and returns the port.
 * slirp4netns answers a taken port only with "slirp_add_hostfwd failed", so
 * trying first is how the user gets told which port is in use.
 */
export async function probePort(hostIp: string, port: number, protocol: "tcp" | "udp", listenOn?: string): Promise<number> {
  // listenOn: where the helper will really bind, when that differs (pasta's "all addresses" is dual-stack).
  const address = listenOn ?? (hostIp || "0.0.0.0");
  try {
    if (protocol === "udp") {
      const s = createSocket(isIPv6(address) ? "udp6" : "udp4");
      return await new Promise<number>((resolve, reject) => {
        s.once("error", reject);
        s.bind(port, address, () => {
          const p = s.address().port;
          s.close(() => resolve(p));
        });
      });
    }
    const srv = createServer();
    return await new Promise<number>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(port, address, () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
  } catch (e) {
    throw bindError(e, { hostIp, hostPort: port, protocol });
  }
}

/** A bound host socket kept open (portmap). */
export type HeldPort = Server | UdpSocket;

/** Binds hostIp:hostPort and keeps it. */
export async function holdPort(p: PortRecord): Promise<HeldPort> {
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
