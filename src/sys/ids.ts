// Changing the credentials of the enter child for `--user` (single-threaded,
// inside the sandbox's user namespace, just before execve): supplementary
// groups first, then the gid, then the uid, as dropping the uid loses the
// right to change the others.
import { ptr } from "bun:ffi";
import { check, libc } from "./libc.ts";

export function setIds(uid: number, gid: number, groups: number[], opts: { setgroups: boolean }): void {
  if (opts.setgroups) {
    const list = new Uint32Array(Math.max(groups.length, 1));
    list.set(groups);
    check("setgroups", libc.symbols.setgroups(groups.length, ptr(list)), groups.join(","));
  }
  check("setresgid", libc.symbols.setresgid(gid, gid, gid), String(gid));
  check("setresuid", libc.symbols.setresuid(uid, uid, uid), String(uid));
}
