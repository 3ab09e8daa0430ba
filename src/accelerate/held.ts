// A published port's host socket held by a server in an accelerated sandbox
// when the daemon that lent it is gone (docs/accelerate.md "Inbound"): the
// next daemon's bind of that port fails with EADDRINUSE, so it finds the
// listening socket in its own network namespace (/proc/thread-self/net/tcp
// and tcp6: the calling thread's namespace, the host's on the main thread),
// the sandbox's process holding it, and takes a copy with pidfd_getfd.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { copyProcessFd } from "../sys/seccomp.ts";

const TCP_LISTEN = "0A";

/** Inodes of this thread's network namespace's listening TCP sockets on `port`. Pure over the files' text. */
export function listeningInodes(tables: string[], port: number): Set<number> {
  const out = new Set<number>();
  for (const table of tables) {
    for (const line of table.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
      const local = f[1]!.split(":");
      if (Number.parseInt(local[1] ?? "", 16) !== port) continue;
      const inode = Number(f[9]);
      if (inode > 0) out.add(inode);
    }
  }
  return out;
}

function readTable(name: string): string {
  try {
    return readFileSync(`/proc/thread-self/net/${name}`, "utf8");
  } catch {
    return "";
  }
}

/**
 * A copy (ours to close) of the socket listening on `port` in this thread's
 * network namespace that one of `pids` holds, with its inode; null when none
 * of them holds one.
 */
export function takeHeldListener(pids: number[], port: number): { fd: number; inode: number } | null {
  const inodes = listeningInodes([readTable("tcp"), readTable("tcp6")], port);
  if (!inodes.size) return null;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (!m || !inodes.has(Number(m[1]))) continue;
      try {
        return { fd: copyProcessFd(pid, Number(fd)), inode: Number(m[1]) };
      } catch {}
    }
  }
  return null;
}
