// The capability set a sandboxed command gets, resolved the way podman
// resolves it: containers.conf `default_capabilities` (podman's list when
// unset), then --cap-drop / --cap-add, or everything with --privileged.
// Pure: the enter child applies the result (src/sys/caps.ts), the daemon
// resolves it once at create and keeps it in the sandbox's spec, so `start`,
// `restart` and `exec` give the command the same set.
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";
import { readTextFile } from "../sys/files.ts";

/** linux/capability.h, by number (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40). */
export const CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
] as const;

/** The highest capability number this kernel has (/proc/sys/kernel/cap_last_cap). */
export function lastCapability(): number {
  try {
    const text = readTextFile("/proc/sys/kernel/cap_last_cap");
    const n = text === null ? Number.NaN : Number(text.trim());
    if (Number.isInteger(n) && n >= 0 && n < 64) return n;
  } catch {}
  return CAPABILITIES.length - 1;
}

let known: string[] | undefined;
/** The capabilities this kernel has, by name, in kernel order (read once: it cannot change while the machine runs). */
export function knownCapabilities(): string[] {
  return (known ??= CAPABILITIES.slice(0, lastCapability() + 1));
}

/** podman's containers.conf default_capabilities (podman 4 and later): no NET_ADMIN, NET_RAW, SYS_ADMIN or SYS_PTRACE. */
export const PODMAN_DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_NET_BIND_SERVICE",
  "CAP_SETFCAP",
  "CAP_SETGID",
  "CAP_SETPCAP",
  "CAP_SETUID",
  "CAP_SYS_CHROOT",
];

/** A name as podman prints it: CAP_NET_ADMIN for net_admin, ALL kept; not checked. */
export function canonicalCapability(given: string): string {
  const upper = given.trim().toUpperCase();
  return upper === "ALL" || upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
}

/** "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name CAP_NET_ADMIN, as in podman. */
export function capabilityName(given: string, flag: string, known: readonly string[] = CAPABILITIES): string {
  const name = canonicalCapability(given);
  if (!known.includes(name))
    throw new BurrowError(`invalid ${flag} ${quote(given)}: not a capability this kernel knows; use a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL`, {
      kind: "bad-input",
    });
  return name;
}

export interface CapabilityRequest {
  capAdd: string[];
  capDrop: string[];
  privileged: boolean;
}

/**
 * The command's capability set, in kernel order. podman's rules: --privileged
 * is every capability; otherwise start from the defaults (nothing when
 * --cap-drop ALL), add --cap-add (ALL: every one), then take away --cap-drop.
 * `known` is what this kernel has (cap_last_cap): a newer name is refused,
 * not passed on.
 */
export function resolveCapabilities(req: CapabilityRequest, defaults: readonly string[], known: readonly string[] = CAPABILITIES): string[] {
  const isAll = (s: string) => s.trim().toUpperCase() === "ALL";
  const add = req.capAdd.filter((c) => !isAll(c)).map((c) => capabilityName(c, "--cap-add", known));
  const drop = req.capDrop.filter((c) => !isAll(c)).map((c) => capabilityName(c, "--cap-drop", known));
  if (req.privileged) return [...known];
  const set = new Set<string>(req.capDrop.some(isAll) ? [] : defaults.map((c) => capabilityName(c, "default_capabilities", known)));
  for (const c of req.capAdd.some(isAll) ? known : add) set.add(c);
  for (const c of drop) set.delete(c);
  return known.filter((c) => set.has(c));
}

/** The kernel's numbers of the named capabilities. */
export function capabilityNumbers(names: readonly string[]): number[] {
  return names.map((n) => CAPABILITIES.indexOf(n as (typeof CAPABILITIES)[number])).filter((i) => i >= 0);
}

/** Splits podman-style comma lists: `--cap-add NET_ADMIN,SYS_TIME` is two. */
export function splitCapabilityList(values: string[]): string[] {
  return values.flatMap((v) => v.split(",")).filter((v) => v.trim() !== "");
}
