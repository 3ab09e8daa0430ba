// Client for slirp4netns's API socket (--api-socket): host port forwards
// served by slirp4netns itself (port_handler=slirp4netns).
//
// Protocol (slirp4netns docs, podman setupRootlessPortMappingViaSlirp): one
// request per connection; write one JSON object, shut down the write side,
// read the reply until EOF. A reply has "return" (or, for list_hostfwd,
// "entries") on success, "error" with a "desc" on failure.
//
// Runs in the daemon's namespaces: the socket is a path in its mount
// namespace; host_addr is an address of the namespace slirp4netns was
// started in (the daemon's, i.e. the host's network).
import { statSync } from "node:fs";
import { createConnection } from "node:net";
import * as v from "valibot";
import { BurrowError, messageOf } from "../../errors.ts";

export const HostFwdSchema = v.object({
  proto: v.picklist(["tcp", "udp"]),
  /** Address on the host side; "0.0.0.0" for all. */
  host_addr: v.string(),
  host_port: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)),
  /** The sandbox's address (slirp4netnsAddresses().tapAddress). */
  guest_addr: v.string(),
  guest_port: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)),
});
export type HostFwd = v.InferOutput<typeof HostFwdSchema>;

const HostFwdEntrySchema = v.object({ ...HostFwdSchema.entries, id: v.number() });
export type HostFwdEntry = v.InferOutput<typeof HostFwdEntrySchema>;

// slirp4netns 1.2 wraps add/remove replies in "return" but answers
// list_hostfwd with a bare {"entries": [...]}.
const ReplySchema = v.union([v.object({ error: v.unknown() }), v.object({ return: v.unknown() }), v.object({ entries: v.unknown() })]);

/** How long one request may take, connect to EOF. */
const TIMEOUT_MS = 5000;

/** Sends one request and returns its "return" value. Throws BurrowError. */
export async function slirp4netnsRequest(socketPath: string, execute: string, args?: unknown): Promise<unknown> {
  const request = JSON.stringify(args === undefined ? { execute } : { execute, arguments: args });
  const raw = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = createConnection({ path: socketPath });
    sock.setTimeout(TIMEOUT_MS, () => sock.destroy(new Error(`no reply within ${TIMEOUT_MS} ms`)));
    sock.on("connect", () => {
      // end() after the write: a FIN is slirp4netns's end-of-request marker.
      sock.end(`${request}\n`);
    });
    sock.on("data", (b: Buffer) => chunks.push(b));
    sock.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    sock.on("error", reject);
  }).catch((e) => {
    throw new BurrowError(`slirp4netns API socket ${socketPath}: ${execute} failed: ${messageOf(e)}`, { cause: e, kind: "slirp4netns-api" });
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new BurrowError(`slirp4netns API socket ${socketPath}: ${execute}: reply is not JSON: ${JSON.stringify(raw.slice(0, 200))}`, {
      kind: "slirp4netns-api",
    });
  }
  const reply = v.safeParse(ReplySchema, parsed);
  if (!reply.success) {
    throw new BurrowError(`slirp4netns API socket ${socketPath}: ${execute}: unexpected reply ${raw.trim().slice(0, 200)}`, {
      kind: "slirp4netns-api",
    });
  }
  if ("error" in reply.output) {
    const err = reply.output.error as { desc?: unknown } | string;
    const desc = typeof err === "object" && err !== null && typeof err.desc === "string" ? err.desc : JSON.stringify(err);
    throw new BurrowError(`slirp4netns refused ${execute}: ${desc}`, { kind: "slirp4netns-api" });
  }
  return "return" in reply.output ? reply.output.return : reply.output;
}

/**
 * The add_hostfwd arguments for a published port (src/ports/spec.ts shape).
 * hostIp "" (all addresses) is 0.0.0.0, as podman sends it. slirp4netns
 * reports no port it picked, so a random host port (0) must be chosen by
 * the caller first.
 */
export function hostFwdOf(m: { hostIp: string; hostPort: number; containerPort: number; protocol: "tcp" | "udp" }, guestAddr: string): HostFwd {
  if (m.hostPort === 0) {
    throw new BurrowError(`slirp4netns cannot pick a random host port for container port ${m.containerPort}/${m.protocol}: choose the host port first`, {
      kind: "bad-input",
    });
  }
  return { proto: m.protocol, host_addr: m.hostIp || "0.0.0.0", host_port: m.hostPort, guest_addr: guestAddr, guest_port: m.containerPort };
}

/** add_hostfwd: forwards host_addr:host_port to guest_addr:guest_port. Returns the rule id. */
export async function addHostFwd(socketPath: string, fwd: HostFwd): Promise<number> {
  const checked = v.safeParse(HostFwdSchema, fwd);
  if (!checked.success) {
    throw new BurrowError(`invalid port forward ${JSON.stringify(fwd)}: ${checked.issues[0].message}`, { kind: "bad-input" });
  }
  const ret = (await slirp4netnsRequest(socketPath, "add_hostfwd", checked.output)) as { id?: unknown } | undefined;
  if (typeof ret?.id !== "number") {
    throw new BurrowError(`slirp4netns add_hostfwd: reply has no id: ${JSON.stringify(ret)}`, { kind: "slirp4netns-api" });
  }
  return ret.id;
}

/** remove_hostfwd by the id add_hostfwd returned. */
export async function removeHostFwd(socketPath: string, id: number): Promise<void> {
  await slirp4netnsRequest(socketPath, "remove_hostfwd", { id });
}

/** list_hostfwd: the forwards slirp4netns has now. */
export async function listHostFwd(socketPath: string): Promise<HostFwdEntry[]> {
  const ret = (await slirp4netnsRequest(socketPath, "list_hostfwd")) as { entries?: unknown } | undefined;
  const entries = v.safeParse(v.array(HostFwdEntrySchema), ret?.entries ?? []);
  if (!entries.success) {
    throw new BurrowError(`slirp4netns list_hostfwd: unexpected reply ${JSON.stringify(ret).slice(0, 200)}`, { kind: "slirp4netns-api" });
  }
  return entries.output;
}

/**
 * Waits until slirp4netns has created its API socket file (podman's
 * WaitForFile). Resolves true when it exists, false on timeout.
 */
export async function waitForApiSocket(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (statSync(socketPath).isSocket()) return true;
    } catch {}
    if (Date.now() >= deadline) return false;
    await Bun.sleep(5);
  }
}
