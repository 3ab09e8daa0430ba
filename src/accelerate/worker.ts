// The accelerator: ONE Worker thread for every accelerated sandbox (a
// Worker costs ~6.6 MB; docs/accelerate.md). It
// - accepts on the handoff socket, where each accelerated enter step's
//   spawner writes a token line and the enter helper then sends its seccomp
//   listener (SCM_RIGHTS): a listener is adopted only with a token the main
//   thread announced, from a peer of the daemon's own uid;
// - polls every listener, and answers each trapped connect
//   (src/accelerate/connect.ts) with the sandbox's scope
//   (src/accelerate/scope.ts), and each trapped bind on a published port
//   with the forwarder's host socket, which it asks the main thread to lend
//   (src/accelerate/bind.ts);
// - waits for blocking connects to finish without ever blocking on one;
// - applies each sandbox's egress policy (issue 18) to the connects it would
//   hand a host socket, with the addresses burrow's resolver learned for it
//   (docs/egress.md "--accelerate"), and reports the refusals.
import { LearnedAddresses } from "../egress/learned.ts";
import { compilePolicy } from "../egress/policy.ts";
import { close } from "../sys/ns.ts";
import { peerCredOfFd } from "../sys/peercred.ts";
import {
  answerNotification,
  duplicateFd,
  hostSeccompArch,
  netnsInodeOf,
  type Notification,
  type NotifSizes,
  notificationValid,
  receiveNotification,
  SOCKET_SYSCALLS,
  syncWakeUp,
} from "../sys/seccomp.ts";
import { acceptNB, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, LinePipe, PollSet } from "../sys/sockets.ts";
import { receiveWithFds } from "../sys/unix-socket.ts";
import { finishBind, type ParkedBind, trappedBind } from "./bind.ts";
import { acceleratedConnect, type Verdict } from "./connect.ts";
import type { AcceleratorCommand, AcceleratorEgress, AcceleratorInit, AcceleratorRefusal, AcceleratorReport } from "./protocol.ts";
import { TOKEN_LINE } from "./protocol.ts";
import { decide, decideBind, insideSubnets, type Scope, type ScopeEgress } from "./scope.ts";
import { ExpectedTokens, TOKEN_MS } from "./tokens.ts";
import { UnansweredCalls } from "./unanswered.ts";
import type { Subnet } from "../net/cni/ip.ts";

declare const self: Worker;
const post = (m: AcceleratorReport) => self.postMessage(m);

/** A blocking connect left unanswered this long is answered ETIMEDOUT (the kernel's own SYN retries give up after ~2 min). */
const PENDING_LIMIT_MS = 130_000;
/** Counts are reported at most this often. */
const REPORT_MS = 500;
/** A bind the main thread has not lent a socket for in this long runs in the sandbox (CONTINUE). */
const LEND_MS = 2_000;
/** A handoff connection that sends nothing useful this long is dropped. */
const HANDOFF_MS = 10_000;
/** While tokens are outstanding, they are checked for age this often. */
const TOKEN_CHECK_MS = 10_000;
/** Expired learned addresses are forgotten at most this often. */
const PRUNE_MS = 60_000;

interface Expected {
  id: string;
  scope: Scope;
  inside: Subnet[];
  /** The sandbox's number in the unanswered-calls table. */
  key: number;
  /** Every call answered CONTINUE: the sandbox crashed the supervisor again and again. */
  passthrough: boolean;
  /** `decide`'s verdicts by "ip port", for a sandbox without an egress policy (then pure in the destination, for a task in the sandbox's own netns). */
  verdicts: Map<string, Verdict>;
}

/** At most this many remembered verdicts per sandbox (a client connecting to many destinations starts over). */
const VERDICTS = 256;

/** A sandbox's egress policy as the Worker applies it: compiled, with its learned addresses; `decide` null: the policy could not be compiled, every connect runs inside under the sandbox's ruleset. */
interface SandboxEgress {
  decide: ScopeEgress | null;
  learned: LearnedAddresses;
}

const netnsInode = netnsInodeOf;

function run(init: AcceleratorInit): void {
  const sizes: NotifSizes = init.sizes;
  const arch = hostSeccompArch();
  if (!arch) throw new Error(`no seccomp table for ${process.arch}`);
  const nrConnect = SOCKET_SYSCALLS[arch].connect;
  const nrBind = SOCKET_SYSCALLS[arch].bind;
  // poll, not epoll: the listeners' synchronous wake-up (syncWakeUp) reaches a poll waiter only (src/sys/sockets.ts PollSet).
  const ep = new PollSet();
  const handlers = new Map<number, (fd: number, events: number) => void>();
  const expected = new ExpectedTokens<Expected>(TOKEN_MS);
  const egress = new Map<string, SandboxEgress>(); // by sandbox id
  let refusals: AcceleratorRefusal[] = [];
  let lastPrune = Date.now();
  const notifBuffer = new Uint8Array(Math.max(sizes.notif, 80));
  const handoffBuffer = new Uint8Array(64);
  const listeners = new Map<number, Expected>(); // by listener fd
  const pending = new Map<number, { listener: number; finish: () => number; abandon: () => void; since: number; slot: number }>(); // by twin fd
  const handoffs = new Map<number, { text: string; since: number }>();
  const parked = new Map<number, ParkedBind & { since: number; slot: number }>(); // binds waiting for a lent socket, by ask
  let nextAsk = init.firstAsk;
  const unanswered = new UnansweredCalls(init.unanswered);
  let connectsSeen = 0;
  const counts: Record<string, number> = {};
  let countsDirty = false;
  let lastReport = 0;
  let running = true;

  const drop = (fd: number) => {
    ep.remove(fd);
    handlers.delete(fd);
    close(fd);
  };

  function dropListener(fd: number): void {
    for (const [twin, p] of pending) {
      if (p.listener !== fd) continue;
      pending.delete(twin);
      ep.remove(twin);
      handlers.delete(twin);
      p.abandon();
      unanswered.answered(p.slot);
    }
    // Its binds are answered when their sockets come (the ADDFD then fails: nothing is lent).
    for (const b of parked.values()) {
      if (b.listener !== fd) continue;
      b.listener = -1;
      unanswered.answered(b.slot);
      b.slot = -1;
    }
    listeners.delete(fd);
    drop(fd);
  }

  function onListener(fd: number, events: number): void {
    // Under an egress policy, what the control pipe holds first: an address
    // burrow's resolver learned may be there already, and one epoll round can
    // hold both, the listener first (a level-triggered fd handled last round
    // goes back on epoll's ready list ahead of the pipe). Read late, the
    // connect would run inside (scope.ts LEARNABLE), not on a host socket. A
    // read that finds nothing costs one syscall.
    if (egress.has(listeners.get(fd)?.id ?? "")) {
      onControl();
      // A command read there dropped this listener: its fd is closed already.
      if (!listeners.has(fd)) return;
    }
    const owner = listeners.get(fd);
    if (!owner) {
      drop(fd);
      return;
    }
    if (events & EPOLLIN) {
      let n: ReturnType<typeof receiveNotification>;
      try {
        n = receiveNotification(fd, sizes, notifBuffer);
      } catch {
        // ENOENT: the task died or the call was interrupted between poll and receive.
        return;
      }
      if (owner.passthrough || (n.nr !== nrConnect && n.nr !== nrBind)) {
        try {
          answerNotification(fd, n.id, { continue: true });
        } catch {}
        return;
      }
      // From here until the answer, a crash leaves this call to the next Worker (src/accelerate/unanswered.ts).
      const slot = unanswered.received(n.id, owner.key);
      unanswered.handling(owner.key);
      try {
        if (n.nr === nrBind) onBind(fd, n, owner, slot);
        else onConnect(fd, n, owner, slot);
      } finally {
        unanswered.handling(0);
      }
      return;
    }
    // POLLHUP: no task uses this filter any more.
    if (events & (EPOLLHUP | EPOLLERR)) dropListener(fd);
  }

  function onBind(fd: number, n: Notification, owner: Expected, slot: number): void {
    const out = trappedBind(fd, n, (dest, family, pid) => decideBind(owner.scope, dest, family, netnsInode(pid)));
    if (!("park" in out)) {
      unanswered.answered(slot);
      return;
    }
    const ask = nextAsk++;
    parked.set(ask, { ...out.park, since: Date.now(), slot });
    post({ op: "lend", ask, id: owner.id, port: out.park.port, family: out.park.family });
  }

  function onConnect(fd: number, n: Notification, owner: Expected, slot: number): void {
    if (init.crash && ++connectsSeen === init.crash.at) {
      if (init.crash.exit) process.exit(1);
      throw new Error("BURROW_TEST_ACCEL_CRASH: a crash on a received connect, for the restart test");
    }
    const policy = egress.get(owner.id);
    const out = acceleratedConnect(
      fd,
      n,
      (dest, pid) => {
        if (policy && !policy.decide) return { continue: "egress policy unusable" };
        const netns = netnsInode(pid);
        // Without a policy the verdict depends on the destination alone (the learned addresses of one change with time).
        if (policy || netns !== owner.scope.netnsInode) return decide(owner.scope, dest, netns, owner.inside, policy?.decide ?? undefined);
        const key = `${dest.ip} ${dest.port}`;
        let v = owner.verdicts.get(key);
        if (!v) {
          v = decide(owner.scope, dest, netns, owner.inside);
          if (owner.verdicts.size >= VERDICTS) owner.verdicts.clear();
          owner.verdicts.set(key, v);
        }
        return v;
      },
      () => unanswered.committing(slot),
    );
    if ("answered" in out && out.answered === "refused") refusals.push({ sandbox: owner.id, refusal: out.refusal, logOnly: false });
    else if ("wouldRefuse" in out && out.wouldRefuse) refusals.push({ sandbox: owner.id, refusal: out.wouldRefuse, logOnly: true });
    if ("pending" in out) {
      const p = { listener: fd, ...out.pending, since: Date.now(), slot };
      pending.set(out.pending.fd, p);
      handlers.set(out.pending.fd, (twin) => {
        pending.delete(twin);
        ep.remove(twin);
        handlers.delete(twin);
        const result = p.finish();
        unanswered.answered(slot);
        if (result === 0) count(owner.id);
      });
      ep.add(out.pending.fd, EPOLLOUT);
      return;
    }
    unanswered.answered(slot);
    if (out.answered === "host" && (out.errno === 0 || out.errno === 115)) count(owner.id);
  }

  function count(id: string): void {
    counts[id] = (counts[id] ?? 0) + 1;
    countsDirty = true;
  }

  const ascii = new TextDecoder();
  function onHandoff(fd: number): void {
    const h = handoffs.get(fd);
    if (!h) {
      drop(fd);
      return;
    }
    const buf = handoffBuffer;
    for (;;) {
      let r: { n: number; fds: number[] };
      try {
        r = receiveWithFds(fd, buf);
      } catch {
        r = { n: 0, fds: [] };
      }
      if (r.n === -1) return;
      if (r.n === 0) {
        for (const f of r.fds) close(f);
        handoffs.delete(fd);
        drop(fd);
        return;
      }
      h.text += ascii.decode(buf.subarray(0, r.n));
      if (!r.fds.length) {
        // The token line, perhaps in pieces; anything longer than it and the helper's byte is not ours.
        if (h.text.length > 34) {
          handoffs.delete(fd);
          drop(fd);
          return;
        }
        continue;
      }
      // The listener comes with the helper's one byte, after the token line (one read may bring both).
      const line = h.text.slice(0, 33);
      const token = TOKEN_LINE.test(line) && h.text.slice(33) === "L" ? line.slice(0, 32) : "";
      const owner = token ? expected.take(token, Date.now()) : undefined;
      const [listener, ...extra] = r.fds;
      for (const f of extra) close(f);
      handoffs.delete(fd);
      drop(fd);
      if (!owner) {
        close(listener!);
        post({ op: "warn", message: "a listener came with an unknown token: closed" });
        return;
      }
      adopt(listener!, owner, true, token);
      return;
    }
  }

  /** Serves `listener` for `owner`; `keep`: hand a duplicate to the main thread for a keeper process (a new listener; one taken back from its keeper has one). */
  function adopt(listener: number, owner: Expected, keep: boolean, token?: string): void {
    syncWakeUp(listener);
    listeners.set(listener, owner);
    handlers.set(listener, onListener);
    ep.add(listener, EPOLLIN);
    let keepFd = -1;
    if (keep) {
      try {
        keepFd = duplicateFd(listener);
      } catch (e) {
        post({ op: "warn", message: `no keeper for a listener of ${owner.id.slice(0, 12)}: ${(e as Error).message}` });
      }
    }
    post({ op: "attached", id: owner.id, keepFd, ...(token ? { token } : {}) });
  }

  function onAccept(): void {
    for (;;) {
      const c = acceptNB(init.handoffFd);
      if (c < 0) return;
      let uid = -1;
      try {
        uid = peerCredOfFd(c).uid;
      } catch {}
      if (uid !== init.uid) {
        close(c);
        post({ op: "warn", message: `a handoff connection from uid ${uid} refused` });
        continue;
      }
      handoffs.set(c, { text: "", since: Date.now() });
      handlers.set(c, onHandoff);
      ep.add(c, EPOLLIN);
    }
  }

  const controlPipe = new LinePipe(init.controlFd);
  function onControl(): void {
    // false: the main thread closed its end.
    if (!controlPipe.drain((line) => command(JSON.parse(line) as AcceleratorCommand))) running = false;
  }

  /** Sandbox `id`'s policy from now on (before any listener that carries it is served); its learned addresses are kept. */
  function setEgress(id: string, given: AcceleratorEgress | undefined): void {
    if (!given) return;
    const learned = egress.get(id)?.learned ?? new LearnedAddresses();
    let compiled: ScopeEgress | null = null;
    try {
      compiled = { policy: compilePolicy(given.policy, given.context), learned: (ip) => learned.rulesFor(ip, Date.now()) };
    } catch (e) {
      post({
        op: "warn",
        message: `the egress policy of ${id.slice(0, 12)} cannot be applied to host sockets (its connects stay inside): ${(e as Error).message}`,
      });
    }
    for (const l of given.learned ?? []) learned.addUntil(l.address, l.allowIndex, l.expiresAt);
    egress.set(id, { decide: compiled, learned });
  }

  function command(m: AcceleratorCommand): void {
    switch (m.op) {
      case "expect":
        setEgress(m.id, m.egress);
        expected.expect(
          m.token,
          { id: m.id, scope: m.scope, inside: insideSubnets(m.scope), key: m.key, passthrough: !!m.passthrough, verdicts: new Map() },
          Date.now(),
        );
        break;
      case "adopt":
        setEgress(m.id, m.egress);
        adopt(m.fd, { id: m.id, scope: m.scope, inside: insideSubnets(m.scope), key: m.key, passthrough: !!m.passthrough, verdicts: new Map() }, false);
        break;
      case "orphans":
        // Ids the dead Worker received: whichever listener still has one pending takes the answer it left safe.
        for (const c of m.calls) {
          const id = BigInt(c.id);
          for (const fd of listeners.keys()) {
            if (!notificationValid(fd, id)) continue;
            try {
              answerNotification(fd, id, c.answer < 0 ? { continue: true } : { error: c.answer });
            } catch {}
            break;
          }
        }
        break;
      case "egress-learned": {
        egress.get(m.sandbox)?.learned.addUntil(m.address, m.allowIndex, m.expiresAt);
        const now = Date.now();
        if (now - lastPrune >= PRUNE_MS) {
          for (const e of egress.values()) e.learned.prune(now);
          lastPrune = now;
        }
        break;
      }
      case "forget":
        expected.forget(m.id);
        for (const [fd, e] of listeners) if (e.id === m.id) dropListener(fd);
        egress.delete(m.id);
        delete counts[m.id];
        break;
      case "lent": {
        const b = parked.get(m.ask);
        parked.delete(m.ask);
        if (!b || b.listener < 0) {
          if (m.fd >= 0) close(m.fd);
          if (b || m.fd >= 0) post({ op: "borrowed", ask: m.ask, ok: false });
          break;
        }
        const ok = finishBind(b, m.fd, m.errno, () => unanswered.committing(b.slot));
        unanswered.answered(b.slot);
        if (m.fd >= 0) post({ op: "borrowed", ask: m.ask, ok });
        break;
      }
      case "exit":
        running = false;
        break;
    }
  }

  handlers.set(init.controlFd, onControl);
  ep.add(init.controlFd, EPOLLIN);
  handlers.set(init.handoffFd, onAccept);
  ep.add(init.handoffFd, EPOLLIN);
  const onEvent = (fd: number, events: number) => handlers.get(fd)?.(fd, events);

  post({ op: "started" });
  try {
    loop();
  } finally {
    // A crash too: the fds are the process's, not this thread's. The handoff socket is the main thread's (the next Worker's).
    for (const twin of pending.keys()) close(twin);
    for (const fd of [...listeners.keys()]) {
      listeners.delete(fd);
      close(fd);
    }
    for (const fd of handoffs.keys()) close(fd);
    close(init.controlFd);
  }
  post({ op: "exited" });

  function loop(): void {
    while (running) {
      ep.wait(pending.size || handoffs.size || parked.size || countsDirty ? REPORT_MS : expected.size ? TOKEN_CHECK_MS : -1, onEvent);
      const now = Date.now();
      // Refusals go out with each round of events: batched under a tight loop, at once otherwise.
      if (refusals.length) {
        post({ op: "refusals", refusals });
        refusals = [];
      }
      if (countsDirty && now - lastReport >= REPORT_MS) {
        post({ op: "counts", counts: { ...counts } });
        for (const k of Object.keys(counts)) delete counts[k];
        countsDirty = false;
        lastReport = now;
      }
      for (const [twin, p] of pending) {
        if (now - p.since < PENDING_LIMIT_MS) continue;
        pending.delete(twin);
        ep.remove(twin);
        handlers.delete(twin);
        p.abandon();
        unanswered.answered(p.slot);
      }
      for (const [ask, b] of parked) {
        if (now - b.since < LEND_MS) continue;
        // No answer in time: the bind runs in the sandbox; a socket lent later is given back ("lent" finds no ask).
        parked.delete(ask);
        if (b.listener >= 0) finishBind(b, -1);
        unanswered.answered(b.slot);
      }
      for (const [fd, h] of handoffs) {
        if (now - h.since < HANDOFF_MS) continue;
        handoffs.delete(fd);
        drop(fd);
      }
      expected.expire(now);
    }
    // A normal exit: pending connects are answered (ETIMEDOUT), their twins closed.
    for (const fd of [...listeners.keys()]) dropListener(fd);
  }
}

self.onmessage = (event: MessageEvent<AcceleratorInit>) => {
  if (event.data.op !== "init") return;
  try {
    run(event.data);
  } catch (e) {
    post({ op: "fatal", message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
};
