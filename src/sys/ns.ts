// Namespaces: unshare/setns. Callers run these only in a single-threaded
// re-exec'd role or on a Worker thread that owns the namespace it moves into
// (DESIGN.md "Hard facts about Bun").
import { check, cstr, libc } from "./libc.ts";
import { readlinkSync } from "node:fs";

export const CLONE = {
  FS: 0x00000200,
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;

export function unshare(flags: number): void {
  check("unshare", libc.symbols.unshare(flags));
}

/** Opens a namespace file (or any path) read-only, close-on-exec. */
export function openRO(path: string): number {
  const p = cstr(path);
  return check("open", libc.symbols.open(p, O_RDONLY | O_CLOEXEC, 0), path);
}

export function close(fd: number): void {
  libc.symbols.close(fd);
}

export function setns(fd: number, nstype: number, what = ""): void {
  check("setns", libc.symbols.setns(fd, nstype), what);
}

/** Opens `path` and joins the namespace behind it. */
export function join(path: string, nstype: number): void {
  const fd = openRO(path);
  try {
    setns(fd, nstype, path);
  } finally {
    close(fd);
  }
}

/** The inode identity of a namespace link ("net:[4026531840]"), or null if gone. */
export function nsId(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

export function gettid(): number {
  return libc.symbols.gettid();
}

const NS_GET_NSTYPE = 0xb703;

/**
 * The CLONE_NEW* type of the namespace behind `path` (ioctl NS_GET_NSTYPE),
 * or null when it is no namespace file (a regular file: ENOTTY/EINVAL) or
 * cannot be opened. Any thread.
 */
export function nsTypeOf(path: string): number | null {
  let fd: number;
  try {
    fd = openRO(path);
  } catch {
    return null;
  }
  try {
    const t = libc.symbols.ioctl(fd, NS_GET_NSTYPE, null);
    return t < 0 ? null : t;
  } finally {
    close(fd);
  }
}
