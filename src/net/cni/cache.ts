// libcni's result cache, in its own format (podman's, so a DEL works after a
// daemon restart and across the two): one file per attachment under
// <cacheDir>/results, holding the plugin list that was run, its CNI_ARGS and
// capability args, and the ADD result.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as v from "valibot";
import { BurrowError, messageOf } from "../../errors.ts";
import { type Conflist, ConflistSchema, describeIssues } from "./conflist.ts";
import { type WireResult, WireResultSchema } from "./result.ts";
import type { Attachment } from "./runtime.ts";

export const CACHE_KIND = "cniCacheV1";

/** libcni's cachedInfo, as podman and libcni write it (config is base64, Go's []byte). */
export const CacheEntrySchema = v.looseObject({
  kind: v.literal(CACHE_KIND),
  containerId: v.string(),
  config: v.optional(v.string()),
  ifName: v.string(),
  networkName: v.string(),
  netns: v.optional(v.string()),
  cniArgs: v.optional(v.nullable(v.array(v.tuple([v.string(), v.string()])))),
  capabilityArgs: v.optional(v.nullable(v.record(v.string(), v.unknown()))),
  result: v.optional(v.nullable(v.record(v.string(), v.unknown()))),
});
export type CacheEntry = v.InferOutput<typeof CacheEntrySchema>;

/** A cache entry, decoded: what DEL needs after a restart. */
export interface CachedAttachment extends Attachment {
  networkName: string;
  /** The plugin list that was run (from the entry's config). */
  conflist: Conflist | undefined;
  /** The ADD result as cached (wire format). */
  result: WireResult | undefined;
  file: string;
}

/** libcni's cache file: <cacheDir>/results/<network>-<containerId>-<ifName>. */
export function cacheFilePath(cacheDir: string, networkName: string, containerId: string, ifName: string): string {
  return join(cacheDir, "results", `${networkName}-${containerId}-${ifName}`);
}

/** Writes the cache entry of a successful ADD (atomically: temp file, then rename). */
export async function writeCacheEntry(cacheDir: string, list: Conflist, att: Attachment, result: WireResult): Promise<void> {
  const entry: CacheEntry = {
    kind: CACHE_KIND,
    containerId: att.containerId,
    config: Buffer.from(JSON.stringify(list)).toString("base64"),
    ifName: att.ifName,
    networkName: list.name,
    netns: att.netns,
  };
  if (att.args && att.args.length > 0) entry.cniArgs = att.args;
  if (att.capabilityArgs && Object.keys(att.capabilityArgs).length > 0) entry.capabilityArgs = att.capabilityArgs;
  entry.result = result as Record<string, unknown>;
  const file = cacheFilePath(cacheDir, list.name, att.containerId, att.ifName);
  try {
    await mkdir(join(cacheDir, "results"), { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp${process.pid}`;
    await writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
    await rename(tmp, file);
  } catch (e) {
    throw new BurrowError(`cannot cache the CNI result of network ${list.name} in ${file}: ${messageOf(e)}`, { cause: e, kind: "cni-cache" });
  }
}

/** The entry at `file`, or undefined when there is none. */
export async function readCacheEntry(file: string): Promise<CachedAttachment | undefined> {
  try {
    return await readCacheFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Reads and decodes one libcni cache file; throws ENOENT errors as they are, BurrowError when malformed. */
export async function readCacheFile(file: string): Promise<CachedAttachment> {
  const text = await readFile(file, "utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new BurrowError(`CNI cache file ${file} is not JSON: ${messageOf(e)}`, { kind: "cni-cache" });
  }
  const parsed = v.safeParse(CacheEntrySchema, json);
  if (!parsed.success) throw new BurrowError(`CNI cache file ${file} is malformed: ${describeIssues(parsed.issues)}`, { kind: "cni-cache" });
  const e = parsed.output;
  let conflist: Conflist | undefined;
  if (e.config) {
    try {
      const list = v.safeParse(ConflistSchema, JSON.parse(Buffer.from(e.config, "base64").toString("utf8")));
      if (list.success) conflist = list.output;
    } catch {
      conflist = undefined;
    }
  }
  const result = e.result ? v.safeParse(WireResultSchema, e.result) : undefined;
  return {
    containerId: e.containerId,
    netns: e.netns ?? "",
    ifName: e.ifName,
    networkName: e.networkName,
    args: e.cniArgs ?? undefined,
    capabilityArgs: e.capabilityArgs ?? undefined,
    conflist,
    result: result?.success ? result.output : undefined,
    file,
  };
}
