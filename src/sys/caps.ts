// Capabilities and the Landlock domain of the enter child (single-threaded,
// inside the sandbox's namespaces, just before --user and execve).
//
// Order matters: Landlock first (landlock_restrict_self needs CAP_SYS_ADMIN
// or no_new_privs; we still have the former), then the bounding set (needs
// CAP_SETPCAP), then --user (needs CAP_SETUID/SETGID), and last, still as
// uid 0, the permitted/effective/inheritable sets. After execve a uid-0
// command gets exactly the bounding set (its file capabilities are cut to it).
import { ptr } from "bun:ffi";
import { check, errno as errnoNow, libc, SysError } from "./libc.ts";

const PR_CAPBSET_DROP = 24;
const EINVAL = 22;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

function mask(caps: number[]): [number, number] {
  let lo = 0;
  let hi = 0;
  for (const c of caps) {
    if (c < 32) lo |= 1 << c;
    else hi |= 1 << (c - 32);
  }
  return [lo >>> 0, hi >>> 0];
}

/**
 * Leaves the calling process only `keep`: drops every other capability from
 * the bounding set, clears the ambient set and (while still uid 0) cuts
 * permitted and effective to `keep`, inheritable to nothing.
 */
export function limitBoundingSet(keep: number[]): void {
  // Plain bit tests and a bare loop: this runs cold (interpreted) on every
  // start (scripts/bench/confine-cost.ts). The kernel's last capability is
  // where PR_CAPBSET_DROP says EINVAL: no /proc/sys read on this path.
  const [lo, hi] = mask(keep);
  for (let cap = 0; cap < 64; cap++) {
    const kept = cap < 32 ? lo & (1 << cap) : hi & (1 << (cap - 32));
    if (kept || libc.symbols.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) !== -1) continue;
    const errno = errnoNow();
    if (errno === EINVAL && cap > 0) break;
    throw new SysError("prctl(PR_CAPBSET_DROP)", errno, String(cap));
  }
  check("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", libc.symbols.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
}

/**
 * permitted = effective = current ∩ keep, inheritable = {} (after --user,
 * which may have emptied them already). Across execve a uid-0 command gets
 * the bounding set plus inheritable: nothing to set when inheritable is
 * empty already (joining a user namespace empties it), the usual case.
 */
export function limitProcessCapabilities(keep: number[]): void {
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
  // Two __user_cap_data_struct {effective, permitted, inheritable}: bits 0-31, then 32-63.
  const data = new Uint32Array(6);
  check("capget", libc.symbols.capget(ptr(header), ptr(data)));
  const [lo, hi] = mask(keep);
  if (data[2] === 0 && data[5] === 0 && (data[0]! & ~lo) === 0 && (data[3]! & ~hi) === 0) return;
  const eff = [(data[0]! & lo) >>> 0, (data[3]! & hi) >>> 0];
  const perm = [(data[1]! & lo) >>> 0, (data[4]! & hi) >>> 0];
  data.set([eff[0]!, perm[0]!, 0, eff[1]!, perm[1]!, 0]);
  header[0] = LINUX_CAPABILITY_VERSION_3;
  header[1] = 0;
  check("capset", libc.symbols.capset(ptr(header), ptr(data)));
}

// landlock(7): the same syscall numbers on x86_64 and aarch64.
const SYS_landlock_create_ruleset = 444;
const SYS_landlock_add_rule = 445;
const SYS_landlock_restrict_self = 446;
const LANDLOCK_CREATE_RULESET_VERSION = 1;
const LANDLOCK_RULE_PATH_BENEATH = 1;
/** Linking or renaming a file into another directory (ABI 2). */
const LANDLOCK_ACCESS_FS_REFER = 1 << 13;
/** Creating block devices: never allowed in a sandbox anyway (no CAP_MKNOD, and never in a user namespace). */
const LANDLOCK_ACCESS_FS_MAKE_BLOCK = 1 << 11;
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
const ROOT = new Uint8Array([0x2f, 0]); // "/"

/** Landlock's ABI version, or 0 when the kernel lacks it or has it disabled. */
export function landlockAbi(): number {
  const r = Number(libc.symbols.syscall(SYS_landlock_create_ruleset, 0, 0, LANDLOCK_CREATE_RULESET_VERSION, 0));
  return Math.max(r, 0);
}

/** The oldest ABI burrow confines with: ABI 1 denies every rename into another directory. */
export const LANDLOCK_MIN_ABI = 2;

/**
 * Puts the calling process (and everything it starts) in a Landlock domain of
 * its own. The ruleset changes nothing a sandboxed command could do: it
 * handles "make a block device" (impossible in a sandbox anyway) and
 * "reparent a file" (which Landlock denies to every domain that handles any
 * filesystem right unless a rule grants it), and grants the latter under
 * `/`. What matters is the domain: Landlock lets a process in a domain
 * ptrace, read /proc/PID/{mem,environ,ns/*,root} of, or pidfd_getfd from only
 * processes in the same domain or one nested in it. So a sandbox cannot reach
 * another sandbox's processes (and through them its namespaces), nor the
 * daemon's or its helpers', whatever uid and capabilities it shares with
 * them. A domain also forbids mounts. Runs in the sandbox's mount namespace:
 * `/` is the sandbox's root. Returns false when the kernel has no usable
 * Landlock (the caller says so elsewhere); throws on any other failure.
 */
export function enterOwnLandlockDomain(): boolean {
  // struct landlock_ruleset_attr's first u64 (handled_access_fs), little-endian
  // as two u32s: no BigInt, which costs ~80 µs cold.
  const attr = new Uint32Array([LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_REFER, 0]);
  const rulesetFd = Number(libc.symbols.syscall(SYS_landlock_create_ruleset, Number(ptr(attr)), 8, 0, 0));
  if (rulesetFd < 0) {
    const err = new SysError("landlock_create_ruleset", errnoNow());
    // No Landlock, or ABI 1 (which does not know REFER: EINVAL): not used.
    if (err.code === "ENOSYS" || err.code === "EOPNOTSUPP" || err.code === "EINVAL") return false;
    throw err;
  }
  let rootFd = -1;
  try {
    rootFd = check("open", libc.symbols.open(ptr(ROOT), O_PATH | O_DIRECTORY | O_CLOEXEC, 0), "/");
    // struct landlock_path_beneath_attr { u64 allowed_access; s32 parent_fd } (packed, 12 bytes).
    const rule = new Int32Array([LANDLOCK_ACCESS_FS_REFER, 0, rootFd]);
    check("landlock_add_rule", Number(libc.symbols.syscall(SYS_landlock_add_rule, rulesetFd, LANDLOCK_RULE_PATH_BENEATH, Number(ptr(rule)), 0)), "/");
    check("landlock_restrict_self", Number(libc.symbols.syscall(SYS_landlock_restrict_self, rulesetFd, 0, 0, 0)));
  } finally {
    if (rootFd >= 0) libc.symbols.close(rootFd);
    libc.symbols.close(rulesetFd);
  }
  return true;
}
