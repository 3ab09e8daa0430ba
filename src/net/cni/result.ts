// CNI results: the wire shapes of spec 0.3.x/0.4.0 and 1.0.0, one internal
// shape for the rest of burrow, and the conversion back to a given version
// (for prevResult), plus plugin error objects and VERSION answers.
//
// 0.3.x/0.4.0 and 1.0.0 differ in one place burrow cares about: an entry of
// `ips` carries "version": "4"|"6" before 1.0.0 and not from 1.0.0 on, where
// the family follows from the address.
//
// Pure: no system access.
import * as v from "valibot";
import { BurrowError } from "../../errors.ts";
import { SUPPORTED_CNI_VERSIONS, describeIssues } from "./conflist.ts";
import { parseCidr } from "./ip.ts";

export const InterfaceSchema = v.looseObject({
  name: v.string(),
  mac: v.optional(v.string()),
  sandbox: v.optional(v.string()),
  mtu: v.optional(v.number()),
});

export const IpConfigSchema = v.looseObject({
  /** Only before 1.0.0. */
  version: v.optional(v.picklist(["4", "6"])),
  address: v.pipe(
    v.string(),
    v.check((s) => parseCidr(s) !== null, "expected an address/prefix"),
  ),
  gateway: v.optional(v.string()),
  /** Index into `interfaces`. */
  interface: v.optional(v.number()),
});

export const RouteResultSchema = v.looseObject({ dst: v.string(), gw: v.optional(v.string()) });

export const DnsSchema = v.looseObject({
  nameservers: v.optional(v.array(v.string())),
  domain: v.optional(v.string()),
  search: v.optional(v.array(v.string())),
  options: v.optional(v.array(v.string())),
});

/** A result as a plugin prints it (0.3.0 to 1.0.0). */
export const WireResultSchema = v.looseObject({
  cniVersion: v.string(),
  interfaces: v.optional(v.array(InterfaceSchema)),
  ips: v.optional(v.array(IpConfigSchema)),
  routes: v.optional(v.array(RouteResultSchema)),
  dns: v.optional(DnsSchema),
});
export type WireResult = v.InferOutput<typeof WireResultSchema>;

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
  mtu?: number;
}
export interface CniIpConfig {
  /** Always present here, whatever the wire version said (or left out). */
  version: "4" | "6";
  /** `ip/prefix`, e.g. 10.89.0.5/24. */
  address: string;
  gateway?: string;
  interface?: number;
}
/** The one shape burrow keeps results in. */
export interface CniResult {
  /** The version the plugin answered in. */
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: Array<{ dst: string; gw?: string }>;
  dns: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

export function isSupportedVersion(version: string): boolean {
  return (SUPPORTED_CNI_VERSIONS as readonly string[]).includes(version);
}

export function requireSupportedVersion(version: string, what: string): void {
  if (!isSupportedVersion(version)) {
    throw new BurrowError(`${what} has cniVersion ${JSON.stringify(version)}: burrow supports ${SUPPORTED_CNI_VERSIONS.join(", ")}`, {
      kind: "cni-version",
    });
  }
}

/** Whether `version` is `min` or later (x.y.z numeric compare). */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.split(".").map(Number);
  const b = min.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** Reads a plugin's (or cache's) result JSON into the internal shape. */
export function normalizeResult(json: unknown, source = "CNI result"): CniResult {
  const parsed = v.safeParse(WireResultSchema, json);
  if (!parsed.success) throw new BurrowError(`${source} is not a valid CNI result: ${describeIssues(parsed.issues)}`, { kind: "cni-result" });
  const r = parsed.output;
  requireSupportedVersion(r.cniVersion, source);
  return {
    cniVersion: r.cniVersion,
    interfaces: (r.interfaces ?? []).map((i) => {
      const out: CniInterface = { name: i.name };
      if (i.mac !== undefined) out.mac = i.mac;
      if (i.sandbox !== undefined) out.sandbox = i.sandbox;
      if (i.mtu !== undefined) out.mtu = i.mtu;
      return out;
    }),
    ips: (r.ips ?? []).map((ip) => {
      const family = parseCidr(ip.address)!.address.family;
      const out: CniIpConfig = { version: family === 4 ? "4" : "6", address: ip.address };
      if (ip.gateway !== undefined) out.gateway = ip.gateway;
      if (ip.interface !== undefined) out.interface = ip.interface;
      return out;
    }),
    routes: (r.routes ?? []).map((rt) => (rt.gw === undefined ? { dst: rt.dst } : { dst: rt.dst, gw: rt.gw })),
    dns: { ...(r.dns ?? {}) },
  };
}

/**
 * A result in the wire format of `version` (libcni's GetAsVersion between
 * 0.3.0 and 1.0.0): what a plugin configured with that version expects as
 * prevResult.
 */
export function resultAsVersion(result: CniResult, version: string): WireResult {
  requireSupportedVersion(version, "the requested result version");
  const withVersionField = !versionAtLeast(version, "1.0.0");
  const out: WireResult = { cniVersion: version };
  if (result.interfaces.length > 0) out.interfaces = result.interfaces.map((i) => ({ ...i }));
  if (result.ips.length > 0) {
    out.ips = result.ips.map((ip) => {
      const { version: family, ...rest } = ip;
      return withVersionField ? { version: family, ...rest } : rest;
    });
  }
  if (result.routes.length > 0) out.routes = result.routes.map((r) => ({ ...r }));
  out.dns = { ...result.dns };
  return out;
}

/**
 * Converts a wire result to `version` only when it is in another version:
 * a result already in the right version is passed on untouched, keeping keys
 * burrow does not model.
 */
export function wireAsVersion(json: WireResult, version: string, source?: string): WireResult {
  if (json.cniVersion === version) return json;
  return resultAsVersion(normalizeResult(json, source), version);
}

/** A plugin's error answer (spec: "Error"). */
export const PluginErrorSchema = v.looseObject({
  cniVersion: v.optional(v.string()),
  code: v.number(),
  msg: v.optional(v.string()),
  details: v.optional(v.string()),
});

/** A plugin's VERSION answer. */
export const VersionResultSchema = v.looseObject({
  cniVersion: v.string(),
  supportedVersions: v.array(v.string()),
});
export type VersionResult = v.InferOutput<typeof VersionResultSchema>;
