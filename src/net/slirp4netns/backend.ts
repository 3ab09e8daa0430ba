// The slirp4netns network backend: one slirp4netns per sandbox, started by
// the daemon (session namespaces) for the sandbox's pinned netns.
import { mkdirSync, rmSync } from "node:fs";
import type { NetworkBackend } from "../backend.ts";
import type { NetworkModeOf } from "../mode.ts";
import type { Paths } from "../../paths.ts";
import { parseSlirp4netnsOptions, slirp4netnsAddresses, type Slirp4netnsOptions } from "./options.ts";
import { checkSlirp4netnsFeatures, probeSlirp4netns, type Slirp4netnsFeatures } from "./probe.ts";
import { isOurSlirp4netns, type Slirp4netnsProcess, startSlirp4netns, stopSlirp4netnsPid } from "./process.ts";
import { waitForGlobalIPv6 } from "./ipv6.ts";
import { clearWarmLeftovers, keyOf, type WarmMaker, WarmPool, WarmSlirp4netns } from "./warm.ts";
import type { HelperTrack } from "../../state/helpers.ts";
import type { SetupContext } from "../backend.ts";
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

/** Starts slirp4netns (for a sandbox, or ahead for the next one) and keeps its process in `live` while it runs. */
async function startLive(
  o: Omit<Parameters<typeof startSlirp4netns>[0], "features" | "privateMounts"> & { paths: Paths; privateMounts: string[] | undefined },
): Promise<Slirp4netnsProcess> {
  const { paths, privateMounts, ...rest } = o;
  const proc = await startSlirp4netns({ ...rest, features: await features(paths), ...(privateMounts ? { privateMounts } : {}) });
  live.set(proc.pid, proc.proc);
  proc.proc.exited.then(() => live.delete(proc.pid));
  return proc;
}

/** slirp4netns started ahead for the next sandbox (src/net/slirp4netns/warm.ts). */
const warm = new WarmPool();

/**
 * Whether a sandbox with these options can have its slirp4netns started
 * ahead: not with port_handler=slirp4netns (its API socket is named after
 * the sandbox), and only where the daemon records helpers.
 */
function warmable(options: Slirp4netnsOptions, ctx: SetupContext): boolean {
  return options.portHandler !== "slirp4netns" && !!ctx.helpers;
}

/** The next sandbox's slirp4netns, with the options this one used, made in the background. */
function refillWarm(options: Slirp4netnsOptions, ctx: SetupContext): void {
  if (!warmable(options, ctx)) return;
  // Only what making one needs, never `ctx`: a closure over this sandbox's
  // context would keep it, and the slirp4netns made ahead that it adopted
  // (ctx.warm), alive from the next one made ahead, and so back to the
  // daemon's first sandbox: the soak's RSS grew ~10 KB a sandbox.
  warm.refill(keyOf(options), ctx.paths, warmMaker(options, ctx.paths, ctx.privateMounts, ctx.helpers!.intendWarm));
}

/** A module-level function, so that the closures it makes hold its arguments and nothing of the caller's scope. */
function warmMaker(
  options: Slirp4netnsOptions,
  paths: Paths,
  privateMounts: string[] | undefined,
  intendWarm: (kind: "slirp4netns") => HelperTrack,
): WarmMaker {
  return {
    netSysctls: options.enableIPv6 ? IPV6_AT_ONCE : [],
    intend: () => intendWarm("slirp4netns"),
    start: (netns, logPath, track) => startLive({ track, netnsPath: netns, options, paths, logPath, privateMounts }),
  };
}

/**
 * When the next sandbox's slirp4netns is started after a setup: once the
 * create has replied (its ports take ~0.5 ms more), while the command runs.
 * Measured back to back (hyperfine, `run --rm -p`): 2 ms after setup beat 50
 * ms after setup, where the refill at the release came first and competed
 * with the next CLI's start (medians 25.4/23.7 ms against 26.2/27.2, and
 * 29.2/31.6 without any made ahead). A release refills at once too.
 */
const REFILL_AFTER_SETUP_MS = 2;

export const slirp4netnsBackend: NetworkBackend<"slirp4netns", Slirp4netnsRecord> = {
  kind: "slirp4netns",
  etc: "network",
  bridge: false,
  entersNetns: true,
  warm: {
    async take(mode) {
      const options = optionsOf(mode);
      return options.portHandler === "slirp4netns" ? null : warm.take(keyOf(options));
    },
    claims: (row) => warm.claims(row),
    drop: () => warm.drop(),
    clearLeftovers: async (paths) => clearWarmLeftovers(paths),
  },
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
    let record: Slirp4netnsRecord;
    if (ctx.warm instanceof WarmSlirp4netns) {
      // Started ahead for this netns, which the create joined: its argv names the warm pin (healthy() looks for it there).
      const pid = ctx.warm.adopt(ctx, `${ctx.dir}/slirp4netns.log`);
      record = { pid, netns: ctx.warm.netns, apiSocket, options };
      log.debug(`slirp4netns ${pid}: made ahead, adopted by ${ctx.sandbox.id.slice(0, 12)}`);
    } else {
      const proc = await startLive({
        track: ctx.helpers?.intend("slirp4netns"),
        netnsPath: ctx.netns,
        options,
        paths: ctx.paths,
        logPath: `${ctx.dir}/slirp4netns.log`,
        apiSocketPath: apiSocket,
        privateMounts: ctx.privateMounts,
      });
      record = { pid: proc.pid, netns: ctx.netns, apiSocket, options };
    }
    if (warmable(options, ctx)) setTimeout(() => refillWarm(options, ctx), REFILL_AFTER_SETUP_MS).unref();
    const addrs = slirp4netnsAddresses(options);
    const t0 = performance.now();
    const address6 = options.enableIPv6 ? await waitForGlobalIPv6(ctx.netns, "tap0") : null;
    if (options.enableIPv6) log.debug(`slirp4netns ${record.pid}: IPv6 address ${address6 ?? "not there yet"} after ${(performance.now() - t0).toFixed(1)} ms`);
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
  async teardown(r, ctx) {
    // The next sandbox's, now that this one's command has ended (a `run --rm` loop's next create is a few ms away).
    refillWarm(r.options, ctx);
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
