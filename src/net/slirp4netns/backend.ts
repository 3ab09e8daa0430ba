// The slirp4netns network backend: one slirp4netns per sandbox, started by
// the daemon (session namespaces) for the sandbox's pinned netns.
import { mkdirSync, rmSync } from "node:fs";
import type { NetworkBackend } from "../backend.ts";
import type { NetworkModeOf } from "../mode.ts";
import type { Paths } from "../../paths.ts";
import { parseSlirp4netnsOptions, slirp4netnsAddresses, type Slirp4netnsOptions } from "./options.ts";
import { checkSlirp4netnsFeatures, probeSlirp4netns, type Slirp4netnsFeatures } from "./probe.ts";
import { isOurSlirp4netns, startSlirp4netns, stopSlirp4netnsPid } from "./process.ts";
import { waitForGlobalIPv6 } from "./ipv6.ts";
import { log } from "../../log.ts";

export interface Slirp4netnsRecord {
  pid: number;
  netns: string;
  apiSocket?: string;
  options: Slirp4netnsOptions;
}

/**
 * enable_ipv6: tap0 (made later by slirp4netns, so it takes the netns's
 * defaults) asks for slirp4netns's router advertisement at once instead of
 * after duplicate address detection of its link-local address and a random
 * delay, and its SLAAC address is usable at once (no detection either:
 * slirp4netns's network has no other host). The address was there 1-3 s
 * after start, and IPv6 clients of a published port went over IPv4 until then.
 */
const IPV6_AT_ONCE: Array<[string, string]> = [
  ["net/ipv6/conf/default/accept_dad", "0"],
  ["net/ipv6/conf/default/router_solicitation_delay", "0"],
];

/** slirp4netns processes this daemon started, for a fast, event-driven stop. */
const live = new Map<number, Bun.Subprocess>();

export function optionsOf(mode: NetworkModeOf<"slirp4netns">): Slirp4netnsOptions {
  return parseSlirp4netnsOptions(mode.options ? mode.options.split(",") : []);
}

function features(paths: Paths): Promise<Slirp4netnsFeatures> {
  return probeSlirp4netns({ cachePath: `${paths.stateDir}/slirp4netns-probe.json` });
}

export const slirp4netnsBackend: NetworkBackend<"slirp4netns", Slirp4netnsRecord> = {
  kind: "slirp4netns",
  etc: "network",
  bridge: false,
  entersNetns: true,
  async plan(mode, { paths }) {
    const options = optionsOf(mode);
    checkSlirp4netnsFeatures(options, await features(paths));
    return { newNet: true, ...(options.enableIPv6 ? { netSysctls: IPV6_AT_ONCE } : {}) };
  },
  // port_handler=slirp4netns: slirp4netns's own (API socket); else the builtin forwarder.
  ports: (mode) => {
    const o = optionsOf(mode);
    return o.portHandler === "slirp4netns" ? { driver: "slirp4netns" } : { driver: "builtin", keepClientAddress: o.sourceIp };
  },
  async setup(mode, ctx) {
    const options = optionsOf(mode);
    // Unix socket paths are limited to 107 bytes: a short name, not ctx.dir.
    const apiSocket = options.portHandler === "slirp4netns" ? `${ctx.paths.runtimeDir}/api/${ctx.sandbox.id.slice(0, 16)}.sock` : undefined;
    if (apiSocket) mkdirSync(`${ctx.paths.runtimeDir}/api`, { recursive: true, mode: 0o700 });
    const probed = await features(ctx.paths);
    const track = ctx.helpers?.intend("slirp4netns");
    const proc = await startSlirp4netns({
      track,
      netnsPath: ctx.netns,
      options,
      features: probed,
      logPath: `${ctx.dir}/slirp4netns.log`,
      apiSocketPath: apiSocket,
      ...(ctx.privateMounts ? { privateMounts: ctx.privateMounts } : {}),
    });
    live.set(proc.pid, proc.proc);
    proc.proc.exited.then(() => live.delete(proc.pid));
    const addrs = slirp4netnsAddresses(options);
    const record: Slirp4netnsRecord = { pid: proc.pid, netns: ctx.netns, apiSocket, options };
    const t0 = performance.now();
    const address6 = options.enableIPv6 ? await waitForGlobalIPv6(ctx.netns, "tap0") : null;
    if (options.enableIPv6) log.debug(`slirp4netns ${proc.pid}: IPv6 address ${address6 ?? "not there yet"} after ${(performance.now() - t0).toFixed(1)} ms`);
    return {
      record,
      address: addrs.tapAddress,
      hostsAddress: addrs.tapAddress,
      nameservers: [addrs.dns, ...(addrs.ipv6 ? [addrs.ipv6.dns] : [])],
      ipv6: options.enableIPv6,
      ...(address6 ? { address6 } : {}),
      gateway: addrs.gateway,
      prefixLength: addrs.prefixLength,
    };
  },
  async teardown(r) {
    try {
      const proc = live.get(r.pid);
      if (proc) {
        // It keeps no state worth a graceful exit. Its exit takes 20-40 ms
        // in the kernel (tearing down the private mount namespace of
        // --enable-sandbox waits for an RCU grace period); nothing here
        // depends on that, so the sandbox's teardown does not wait for it.
        proc.kill("SIGKILL");
        if (r.apiSocket) rmSync(r.apiSocket, { force: true });
      } else {
        await stopSlirp4netnsPid(r.pid, r.netns, r.apiSocket);
      }
      return [];
    } catch (e) {
      return [e as Error];
    }
  },
  healthy: (r) => isOurSlirp4netns(r.pid, r.netns),
};
