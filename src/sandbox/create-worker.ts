// Worker thread (daemon): makes one sandbox's namespaces, then is thrown
// away. Network namespaces are per thread, so unshare here moves only this
// thread; the daemon's main thread stays in the host network namespace.
// A thread that unshared a mount namespace can never setns into another one,
// which is why every sandbox gets a fresh Worker (the daemon keeps one warm).
import { bind, makeRootPrivate } from "../sys/mount.ts";
import { CLONE, gettid, join, unshare } from "../sys/ns.ts";
import { linkUp } from "../sys/net.ts";
import { pinToCpu, sethostname } from "../sys/proc.ts";
import type { CreateNsRequest, CreateNsReply } from "./namespaces.ts";

declare const self: Worker;

self.onmessage = (ev: MessageEvent) => {
  const req = ev.data as CreateNsRequest | { done: true };
  if ("done" in req) {
    process.exit(0);
  }
  let reply: CreateNsReply;
  try {
    // Runs in: this thread only. Join an existing netns first (container:,
    // ns:, host keeps the current one), then split off the rest.
    // The CPU matters for the mount namespace pin: see namespaces.ts.
    if (req.cpu !== undefined) pinToCpu(req.cpu);
    if (req.joinNet) join(req.joinNet, CLONE.NEWNET);
    if (req.netOnly) {
      unshare(CLONE.NEWNET);
    } else {
      unshare(CLONE.NEWNS | CLONE.NEWUTS | (req.newNet ? CLONE.NEWNET : 0));
      sethostname(req.hostname);
      makeRootPrivate();
      for (const [src, dst] of req.binds) bind(src, dst);
    }
    if (req.newNet || req.netOnly) linkUp("lo");
    reply = { ok: true, tid: gettid() };
  } catch (e) {
    reply = { ok: false, error: (e as Error).message };
  }
  self.postMessage(reply);
};
