// The per-sandbox /etc files (hosts, resolv.conf, hostname) live in the
// sandbox's runtime directory and are bind-mounted over /etc inside its
// mount namespace. They are rewritten in place (same inode), so the bind
// mounts see later changes, e.g. when a network is connected.
import { realpathSync, writeFileSync } from "node:fs";

export interface EtcFiles {
  hosts: string;
  resolv: string;
  hostname: string;
}

export function etcFiles(dir: string): EtcFiles {
  return { hosts: `${dir}/hosts`, resolv: `${dir}/resolv.conf`, hostname: `${dir}/hostname` };
}

/** Bind mounts for the namespace Worker; skips targets the host lacks. */
export function etcBinds(f: EtcFiles): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [src, dst] of [
    [f.hosts, "/etc/hosts"],
    [f.resolv, "/etc/resolv.conf"],
    [f.hostname, "/etc/hostname"],
  ] as const) {
    // A bind over a symlink follows it; a dangling one cannot be a target.
    try {
      realpathSync(dst);
      out.push([src, dst]);
    } catch {}
  }
  return out;
}

export function writeInPlace(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o644 });
}
