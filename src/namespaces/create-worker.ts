// Worker thread (daemon): makes one sandbox's namespaces at a time.
// Namespaces are per thread, so unshare here moves only this thread; the
// daemon's main thread stays in the host's (or, rootless, the holder's).
// Once a sandbox's namespaces are pinned, the worker goes back to the main
// thread's mount namespace (`reset`: an unshare of a mount namespace gave
// this thread its own fs_struct, so setns into one is allowed to it) and is
// made the next spare, instead of a new Worker per sandbox (~5 ms of CPU
// that competed with the run it followed: docs/decisions.md).
import { statSync, writeFileSync } from "node:fs";
import { bind, detachMountsBelow, hideDirectory, makeRootPrivate } from "../sys/mount.ts";
import { CLONE, gettid, join, nsId, setns, unshare } from "../sys/ns.ts";
import { linkUp } from "../sys/net.ts";
import { pinToCpu, sethostname } from "../sys/proc.ts";
import { exitWorker } from "../sys/libc.ts";
import { parseMessage } from "../messages.ts";
import { CreateNsMessage, type CreateNsReply } from "./messages.ts";

declare const self: Worker;

const parseRequest = (data: unknown) => parseMessage(CreateNsMessage, data, "the namespace worker's request");

/** Set once this (spare) worker has made a sandbox's namespaces ahead of need. */
let prepared = false;
/**
 * Set when that prepare also set the hostname, bound the /etc files and hid
 * the directories (its `ahead`): a create that uses it does none of that
 * again, and an empty hostname keeps the one set (src/namespaces/pins.ts
 * uses such a spare only when it adopts its files).
 */
let preparedAhead = false;

/**
 * Back into the main thread's mount namespace (/proc/self is the thread
 * group leader), so that the next unshare copies the daemon's mounts, not
 * the last sandbox's binds; it also resets this thread's root and cwd.
 * Only that one: the next unshare makes fresh net and uts namespaces
 * whichever this thread is in, and rootless the daemon's own (the host's)
 * are not ours to join. Checked after, so a worker that could not go back
 * fails its prepare and is never used again.
 */
function resetMountNamespace(): void {
  const daemons = nsId("/proc/self/ns/mnt");
  if (!daemons) throw new Error("cannot read the daemon's mount namespace");
  // One it never left (a bare network namespace's worker) is not joined: a
  // thread that shares its fs_struct may not.
  if (nsId("/proc/thread-self/ns/mnt") !== daemons) join("/proc/self/ns/mnt", CLONE.NEWNS);
  if (nsId("/proc/thread-self/ns/mnt") !== daemons) throw new Error("the namespace worker is not back in the daemon's mount namespace");
}

function makeNamespaces(cpu: number | undefined): void {
  // The CPU matters for the mount namespace pin: see namespaces.ts.
  if (cpu !== undefined) pinToCpu(cpu);
  unshare(CLONE.NEWNS | CLONE.NEWUTS | CLONE.NEWNET);
  makeRootPrivate();
  linkUp("lo");
  allowPing();
}

/**
 * The command has no CAP_NET_RAW (podman's default set), so ping needs ICMP
 * datagram sockets, which a new network namespace allows nobody ("1 0").
 * podman's default_sysctls give gid 0 of the container the right; so do we.
 * /proc/sys/net is this thread's network namespace's. A kernel that refuses
 * leaves ping as it was, nothing else.
 */
function allowPing(): void {
  try {
    writeFileSync("/proc/sys/net/ipv4/ping_group_range", "0 0");
  } catch {}
}

/**
 * The backend's sysctls for the sandbox's own new netns (never one it
 * joins); /proc/sys/net is this thread's. They make its network come up
 * sooner (slirp4netns's IPv6), nothing depends on them: a kernel that
 * refuses (no IPv6) leaves the defaults.
 */
function writeNetSysctls(sysctls: Array<[string, string]>): void {
  for (const [key, value] of sysctls) {
    try {
      writeFileSync(`/proc/sys/${key}`, value);
    } catch {}
  }
}

/** A directory's [st_dev, st_ino]. */
function identity(dir: string): [number, number] {
  const st = statSync(dir);
  return [st.dev, st.ino];
}

function finishMountsAndName(hostname: string, binds: ReadonlyArray<readonly [string, string]>, hide: readonly string[]): void {
  sethostname(hostname);
  for (const [src, dst] of binds) bind(src, dst);
  // After the binds: their sources may live under a hidden directory.
  for (const dir of hide) hideDirectory(dir);
}

self.onmessage = (ev: MessageEvent) => {
  let req: ReturnType<typeof parseRequest>;
  try {
    req = parseRequest(ev.data);
  } catch (e) {
    self.postMessage({ ok: false, error: (e as Error).message } satisfies CreateNsReply);
    return;
  }
  if ("done" in req) {
    exitWorker(0);
  }
  if ("prepare" in req) {
    // A spare: the expensive part of the next plain sandbox (new net, mount
    // and uts namespaces, loopback up) happens before anyone asks for it.
    try {
      prepared = false;
      preparedAhead = false;
      if (req.reset) resetMountNamespace();
      makeNamespaces(req.cpu);
      // The copies of the pins that exist now; none come later (its mounts are private).
      detachMountsBelow(req.detach);
      // The next plain sandbox's hostname and /etc files, off its create's path;
      // what each hide covers, looked at before it is mounted over (see CreateNsReply).
      const hidden = req.ahead ? req.detach.map((dir) => identity(dir)) : undefined;
      if (req.ahead) finishMountsAndName(req.ahead.hostname, req.ahead.binds, req.detach);
      prepared = true;
      preparedAhead = req.ahead !== undefined;
      self.postMessage({ ok: true, tid: gettid(), ...(hidden ? { hidden } : {}) } satisfies CreateNsReply);
    } catch (e) {
      self.postMessage({ ok: false, error: (e as Error).message } satisfies CreateNsReply);
    }
    return;
  }
  let reply: CreateNsReply;
  try {
    // Runs in: this thread only. Join an existing netns first (container:,
    // ns:, host keeps the current one), then split off the rest.
    if (req.usePrepared) {
      if (!prepared) throw new Error("internal: the spare sandbox worker was not prepared");
      // Its own new netns is given up for the one to join (container:, ns:, a warm slirp4netns's),
      // by the fd the main thread opened: the path may not be a mount in this older copy of its namespace.
      if (req.joinNet) {
        if (req.joinNetFd === undefined) throw new Error("internal: a prepared spare joins a netns by the fd the main thread opened");
        setns(req.joinNetFd, CLONE.NEWNET, req.joinNet);
      }
    } else if (req.netOnly) {
      if (req.cpu !== undefined) pinToCpu(req.cpu);
      unshare(CLONE.NEWNET);
      linkUp("lo");
    } else if (req.newNet && !req.joinNet) {
      makeNamespaces(req.cpu);
    } else {
      if (req.cpu !== undefined) pinToCpu(req.cpu);
      if (req.joinNet) join(req.joinNet, CLONE.NEWNET);
      unshare(CLONE.NEWNS | CLONE.NEWUTS);
      makeRootPrivate();
    }
    if (req.newNet && !req.joinNet) writeNetSysctls(req.netSysctls ?? []);
    if (req.netOnly) {
      // A bare network namespace: no hostname, no files.
    } else if (req.usePrepared && preparedAhead) {
      // Made when it was prepared: only a hostname other than the one it set.
      if (req.hostname) sethostname(req.hostname);
    } else {
      // A prepared spare did this when it was made.
      if (!req.usePrepared) detachMountsBelow(req.hide);
      finishMountsAndName(req.hostname, req.binds, req.hide);
    }
    reply = { ok: true, tid: gettid() };
  } catch (e) {
    reply = { ok: false, error: (e as Error).message };
  }
  self.postMessage(reply);
};
