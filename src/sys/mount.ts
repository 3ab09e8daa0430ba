// mount(2)/umount2(2) wrappers. Rootless, these act in the holder's mount
// namespace (daemon) or in a sandbox's (sandbox Worker).
import { readFileSync } from "node:fs";
import { check, cstr, isSysError, libc } from "./libc.ts";

export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
} as const;

export const MNT_DETACH = 2;

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  const s = source === null ? null : cstr(source);
  const t = cstr(target);
  const f = fstype === null ? null : cstr(fstype);
  const d = data === null ? null : cstr(data);
  check("mount", libc.symbols.mount(s, t, f, flags, d), `${source ?? "none"} -> ${target}`);
}

export function bind(source: string, target: string): void {
  mount(source, target, null, MS.BIND);
}

export function umount(target: string, flags = MNT_DETACH): void {
  check("umount2", libc.symbols.umount2(cstr(target), flags), target);
}

/**
 * Covers `dir` with an empty, read-only tmpfs that nobody may enter (mode 0):
 * what was below it stays only for mount namespaces made before. A command
 * without CAP_SYS_ADMIN cannot unmount it.
 */
export function hideDirectory(dir: string): void {
  mount("tmpfs", dir, "tmpfs", MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, "mode=000,size=4k,nr_inodes=1");
}

/** Makes every mount below `/` private in the calling thread's mount namespace. */
export function makeRootPrivate(): void {
  mount("none", "/", null, MS.REC | MS.PRIVATE);
}

/** umount that accepts "nothing mounted there" (EINVAL) and "no such path" (ENOENT): teardown that may run twice. */
export function umountIfMounted(target: string, flags = MNT_DETACH): void {
  try {
    umount(target, flags);
  } catch (e) {
    if (!isSysError(e, "EINVAL", "ENOENT")) throw e;
  }
}

/** A mountinfo path field with its octal escapes (\\040 for a space, ...) undone. Pure. */
export function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/**
 * The mount points in `mountinfo` (the text of /proc/.../mountinfo) strictly
 * below one of `dirs`, deepest first, so that each can be unmounted before
 * the one it sits on. Pure.
 */
export function mountsBelow(mountinfo: string, dirs: readonly string[]): string[] {
  const prefixes = dirs.map((d) => `${d.replace(/\/+$/, "")}/`);
  const found = new Set<string>();
  for (const line of mountinfo.split("\n")) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": the fifth field.
    const point = line.split(" ", 5)[4];
    if (!point) continue;
    const path = unescapeMountPath(point);
    if (prefixes.some((p) => path.startsWith(p))) found.add(path);
  }
  return [...found].sort((a, b) => b.split("/").length - a.split("/").length || b.localeCompare(a));
}

/**
 * Unmounts (MNT_DETACH) every mount below `dirs` in the calling thread's
 * mount namespace: a new sandbox's copy of the daemon's mounts holds the
 * other sandboxes' namespace pins there, and each copy would keep its
 * namespace alive for as long as this one lives. Returns how many went.
 */
export function detachMountsBelow(dirs: readonly string[]): number {
  let n = 0;
  for (const path of mountsBelow(readFileSync("/proc/thread-self/mountinfo", "utf8"), dirs)) {
    // Until nothing is mounted there (EINVAL): mounts stacked on one path go one at a time.
    for (let i = 0; i < 16; i++) {
      try {
        umount(path);
        n++;
      } catch (e) {
        if (!isSysError(e, "EINVAL", "ENOENT")) throw e;
        break;
      }
    }
  }
  return n;
}
