// The egress Worker: ONE thread that serves every sandbox's resolver and
// reads every sandbox's refusals (docs/egress.md "The resolver", "Events and
// visibility"). A Worker costs ≈ 6.6 MB RSS, so never one per sandbox.
//
// Per sandbox it holds four fds the connector thread made inside the
// sandbox's netns (a socket keeps its netns): `dnsUdp` and `dnsTcp` (the
// resolver on 127.0.0.53:53 there), `nft` (a netfilter socket to learn
// addresses into the sandbox's allow sets) and `nflog` (the ruleset's
// refusals). This thread itself never enters a namespace: it stays in the
// daemon's, where the host's resolvers (systemd-resolved's 127.0.0.53
// included) are reachable, and makes its upstream sockets there, a new one
// per query (a fresh random source port from the kernel) with a fresh random
// ID. A connected UDP socket takes datagrams from the server asked only;
// the ID and the question are checked as well (forwarding.ts answersQuery).
//
// For each query: resolver-policy.ts's decideQuery (refuse or answer at once,
// or forward), the shared answer cache, upstream (the next server after
// UPSTREAM_TIMEOUT_MS, then SERVFAIL; again over TCP when truncated),
// decideAnswer, then the addresses learned into the nft sets BEFORE the
// answer is sent (the program's connect would race the set otherwise), each
// only when the entry written before does not cover the answer (LEARN_SLACK_S).
//
// The thread sits in epoll_wait, so Worker messages cannot reach it after
// `init`: commands arrive as JSON lines on a pipe in the epoll set
// (worker-protocol.ts). Garbage is collected by the loop itself, as in the
// connector (src/ports/connector-worker.ts: JavaScriptCore's collection
// timers run from an event loop this thread never returns to).
import { close } from "../sys/ns.ts";
import { SOCK_DGRAM, SOCK_STREAM } from "../sys/net.ts";
import { connectStart } from "../sys/netio.ts";
import { readNflog as realReadNflog, type NflogPacket } from "../sys/nflog.ts";
import {
  acceptNB,
  EAGAIN,
  Epoll,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  LinePipe,
  readNB,
  recvFrom,
  sendTo,
  writeNB,
} from "../sys/sockets.ts";
import { type DnsMessage, encodeMessage, parseMessage, RCODE, refusal, udpLimit } from "./dns-message.ts";
import { AnswerCache, answersQuery, cacheKey, framed, TcpFrames, upstreamQuery } from "./forwarding.ts";
import { learnedSeconds } from "./learned.ts";
import { canonicalName } from "./names.ts";
import { learnedSet } from "./nft.ts";
import { learnAddresses as realLearnAddresses } from "./nft-netlink.ts";
import { type CompiledPolicy, compilePolicy } from "./policy.ts";
import { loggedRefusal, type Refusal } from "./refusals.ts";
import { decideAnswer, decideQuery } from "./resolver-policy.ts";
import type { EgressAttach, EgressCommand, EgressInit, EgressReport } from "./worker-protocol.ts";
import { GcPacer } from "../gc-pacer.ts";

declare const self: Worker;
const post = (m: EgressReport) => self.postMessage(m);

type Learner = (fd: number, entries: readonly { set: string; address: string; seconds: number }[]) => void;
type NflogReader = (fd: number) => NflogPacket[];

const ECONNREFUSED = 111;
/** Queries of one sandbox waiting for upstream at once; more are answered SERVFAIL at once. */
export const MAX_IN_FLIGHT = 64;
/** How long one upstream server has to answer before the next is asked. */
export const UPSTREAM_TIMEOUT_MS = 2000;
/** DNS-over-TCP connections from one sandbox at once; more are closed at once. */
export const MAX_TCP_CONNECTIONS = 16;
/** A DNS-over-TCP connection with nothing to do for this long is closed (RFC 7766 6.2.3 suggests seconds). */
export const TCP_IDLE_MS = 10_000;
/** A DNS-over-TCP message must arrive whole within this long of its first byte, or the connection is closed (bytes trickling in keep it from being idle). */
export const TCP_FRAME_MS = 10_000;
/**
 * Each learned address goes into its set for this much longer than the
 * answer needs, and is not learned again while what the set holds already
 * covers the answer: a flood of queries for one name costs one netlink
 * transaction per address per ~30 s, not one per query.
 */
export const LEARN_SLACK_S = 30;
/** Entries of a sandbox's `learnedUntil` past which the expired ones are forgotten (the next prune at twice what is left). */
const LEARNED_UNTIL_PRUNE_AT = 1024;
/** Answer bytes one DNS-over-TCP connection may have waiting for its client to read; more and it is closed. */
const MAX_TCP_QUEUED = 256 * 1024;
/** Datagrams handled per readiness event before the loop serves others. */
const DGRAM_BATCH = 64;
const GC_IDLE_MS = 1000;
const GC_MAX_MS = 5000;

/** How the answer to one query gets back to the sandbox; null: nothing to send (a message that did not parse). */
type Reply = (response: DnsMessage | null) => void;

interface Sandbox {
  id: string;
  policy: CompiledPolicy;
  upstreams: string[];
  fds: EgressAttach["fds"];
  inFlight: number;
  conns: Set<Conn>;
  closed: boolean;
  /** What this worker put into the sandbox's learned sets: `set address` -> expiry (ms epoch) the kernel was given. */
  learnedUntil: Map<string, number>;
  /** Size of learnedUntil at which its expired entries are forgotten. */
  learnedPruneAt: number;
}

interface Conn {
  sandbox: Sandbox;
  fd: number;
  frames: TcpFrames;
  /** Answers waiting for room in the socket, and their bytes. */
  out: Uint8Array[];
  queued: number;
  /** Queries read and not answered yet. */
  waiting: number;
  lastActive: number;
  /** When the first byte of the message being read arrived (ms); 0: none is being read. */
  frameSince: number;
  /** The client shut its side: closed once its answers are out. */
  eof: boolean;
  /** EPOLLOUT is in its epoll events. */
  watchingOut: boolean;
  closed: boolean;
}

/** A query waiting for upstream. */
interface Pending {
  sandbox: Sandbox;
  query: DnsMessage;
  rules: number[];
  reply: Reply;
  key: string;
  /** Index into the sandbox's upstreams of the server asked now. */
  server: number;
  /** The ID burrow sent (never the sandbox's). */
  id: number;
  fd: number;
  deadline: number;
  tcp: { out: Uint8Array; written: number; frames: TcpFrames } | null;
}

function run(init: EgressInit, learn: Learner, readNflog: NflogReader): void {
  const gcPacer = new GcPacer(GC_IDLE_MS, GC_MAX_MS);
  const ep = new Epoll(256);
  const handlers = new Map<number, (fd: number, events: number) => void>();
  const sandboxes = new Map<string, Sandbox>();
  const pendings = new Set<Pending>();
  const cache = new AnswerCache();
  const buf = new Uint8Array(65536);
  const from = new Uint8Array(28);
  const fromLen = new Uint32Array(1);
  const ids = new Uint16Array(1);
  const randomId = () => crypto.getRandomValues(ids)[0]!;
  const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

  function watch(fd: number, events: number, handler: (fd: number, events: number) => void): void {
    ep.add(fd, events);
    handlers.set(fd, handler);
  }
  function unwatch(fd: number): void {
    if (!handlers.delete(fd)) return;
    ep.remove(fd);
  }

  const refuse = (s: Sandbox, r: Refusal) => post({ op: "refused", id: s.id, refusal: r });

  // ---- queries ----

  function handleQuery(s: Sandbox, bytes: Uint8Array, reply: Reply): void {
    madeGarbage();
    let query: DnsMessage;
    try {
      query = parseMessage(bytes);
    } catch {
      reply(null); // not DNS: nothing a client waits for
      return;
    }
    const decision = decideQuery(s.policy, query);
    if (!decision.forward) {
      const name = query.questions[0]?.name;
      const refusedName = decision.reason === "name not allowed" && name !== undefined;
      if (refusedName) refuse(s, { destination: "", protocol: "dns", rule: null, reason: decision.reason, name: canonicalName(name) });
      // --egress-log-only: the name is reported and asked all the same (nothing is learned for it: no rule matched).
      if (!(refusedName && s.policy.logOnly)) {
        reply(decision.response);
        return;
      }
      forward(s, query, [], reply);
      return;
    }
    forward(s, query, decision.rules, reply);
  }

  function forward(s: Sandbox, query: DnsMessage, rules: number[], reply: Reply): void {
    const q = query.questions[0]!;
    const key = cacheKey(s.upstreams, q.name, q.type);
    const cached = cache.get(key, Date.now());
    if (cached) {
      answer(s, query, rules, cached, reply);
      return;
    }
    if (s.inFlight >= MAX_IN_FLIGHT) {
      reply(refusal(query, RCODE.SERVFAIL));
      return;
    }
    s.inFlight++;
    const p: Pending = { sandbox: s, query, rules, reply, key, server: -1, id: 0, fd: -1, deadline: 0, tcp: null };
    pendings.add(p);
    ask(p, 0);
  }

  function dropUpstreamSocket(p: Pending): void {
    if (p.fd < 0) return;
    unwatch(p.fd);
    close(p.fd);
    p.fd = -1;
  }

  function settle(p: Pending): void {
    dropUpstreamSocket(p);
    pendings.delete(p);
    p.sandbox.inFlight--;
  }

  /** Asks server `index` over UDP; past the last server, SERVFAIL. */
  function ask(p: Pending, index: number): void {
    dropUpstreamSocket(p);
    const { upstreams } = p.sandbox;
    for (let i = index; i < upstreams.length; i++) {
      p.server = i;
      p.id = randomId();
      p.tcp = null;
      const bytes = encodeMessage(upstreamQuery(p.query, p.id));
      let fd = -1;
      try {
        fd = connectStart(upstreams[i]!, init.upstreamPort, SOCK_DGRAM);
        if (writeNB(fd, bytes, bytes.length) !== bytes.length) throw new Error("send failed");
        watch(fd, EPOLLIN, () => onUpstreamUdp(p));
      } catch {
        // No route to this server (an IPv6 one on an IPv4-only host), out of fds: the next.
        if (fd >= 0) close(fd);
        continue;
      }
      p.fd = fd;
      p.deadline = Date.now() + UPSTREAM_TIMEOUT_MS;
      return;
    }
    settle(p);
    p.reply(refusal(p.query, RCODE.SERVFAIL));
  }

  function onUpstreamUdp(p: Pending): void {
    for (let i = 0; i < DGRAM_BATCH && p.fd >= 0; i++) {
      const n = readNB(p.fd, buf);
      if (n === -ECONNREFUSED) {
        ask(p, p.server + 1); // nothing listens there: the next at once
        return;
      }
      if (n < 0) return;
      let m: DnsMessage;
      try {
        m = parseMessage(buf.slice(0, n));
      } catch {
        continue;
      }
      if (!answersQuery(m, p.id, p.query)) continue; // not the answer to what was asked: a spoofing attempt, or late
      if (m.header.tc) askOverTcp(p);
      else complete(p, m);
      return;
    }
  }

  /** Upstream's UDP answer was truncated: the same server again over TCP, with a new ID. */
  function askOverTcp(p: Pending): void {
    dropUpstreamSocket(p);
    p.id = randomId();
    let fd = -1;
    try {
      fd = connectStart(p.sandbox.upstreams[p.server]!, init.upstreamPort, SOCK_STREAM);
      p.fd = fd;
      p.tcp = { out: framed(encodeMessage(upstreamQuery(p.query, p.id))), written: 0, frames: new TcpFrames() };
      p.deadline = Date.now() + UPSTREAM_TIMEOUT_MS;
      watch(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, () => onUpstreamTcp(p));
    } catch {
      if (fd >= 0 && p.fd !== fd) close(fd);
      ask(p, p.server + 1);
    }
  }

  function onUpstreamTcp(p: Pending): void {
    const t = p.tcp!;
    if (t.written < t.out.length) {
      const n = writeNB(p.fd, t.out.subarray(t.written), t.out.length - t.written);
      if (n > 0) t.written += n;
      else if (n !== -EAGAIN) {
        ask(p, p.server + 1);
        return;
      }
    }
    for (;;) {
      const n = readNB(p.fd, buf);
      if (n === -EAGAIN) return;
      if (n <= 0) {
        // closed or failed before answering
        ask(p, p.server + 1);
        return;
      }
      for (const frame of t.frames.push(buf.subarray(0, n))) {
        let m: DnsMessage;
        try {
          m = parseMessage(frame);
        } catch {
          continue;
        }
        if (answersQuery(m, p.id, p.query) && !m.header.tc) {
          complete(p, m);
          return;
        }
      }
    }
  }

  function complete(p: Pending, upstream: DnsMessage): void {
    settle(p);
    cache.put(p.key, upstream, Date.now());
    answer(p.sandbox, p.query, p.rules, upstream, p.reply);
  }

  /** Upstream's answer (fresh or cached) to sandbox `s`: its own decision, its addresses learned, then the answer. */
  function answer(s: Sandbox, query: DnsMessage, rules: number[], upstream: DnsMessage, reply: Reply): void {
    if (s.closed) return;
    // Checked against burrow's ID already: decideAnswer compares with the sandbox's.
    const asked = { ...upstream, header: { ...upstream.header, id: query.header.id } };
    const d = decideAnswer(s.policy, query, asked, rules);
    if (d.retryOverTcp) {
      reply(refusal(query, RCODE.SERVFAIL));
      return;
    }
    const name = canonicalName(query.questions[0]!.name);
    for (const r of d.refused) refuse(s, { destination: r.address, protocol: "dns", rule: r.verdict.rule?.text ?? null, reason: r.verdict.reason, name });
    // --egress-log-only: the addresses the policy would leave out are reported (above) and answered all the same.
    const response = s.policy.logOnly && d.refused.length > 0 ? decideAnswer(OPEN_POLICY, query, asked, []).response : d.response;
    // Only addresses whose entry would end before the answer needs it: the rest are in the set long enough already.
    const now = Date.now();
    const due: { set: string; address: string; seconds: number; rule: number; key: string }[] = [];
    for (const l of d.learn) {
      const set = learnedSet(l.rule, l.address.includes(":") ? 6 : 4);
      const key = `${set} ${l.address}`;
      const seconds = learnedSeconds(l.ttl);
      if ((s.learnedUntil.get(key) ?? 0) >= now + seconds * 1000) continue;
      due.push({ set, address: l.address, seconds: seconds + LEARN_SLACK_S, rule: l.rule, key });
    }
    if (due.length > 0) {
      try {
        learn(
          s.fds.nft,
          due.map(({ set, address, seconds }) => ({ set, address, seconds })),
        );
      } catch (e) {
        // Not in the set: the program's connect would be refused. Fail the lookup instead (fails closed).
        post({ op: "error", message: `cannot learn ${name}'s addresses for sandbox ${s.id}: ${message(e)}` });
        reply(refusal(query, RCODE.SERVFAIL));
        return;
      }
      for (const e of due) {
        const expiresAt = now + e.seconds * 1000;
        s.learnedUntil.set(e.key, Math.max(s.learnedUntil.get(e.key) ?? 0, expiresAt));
        post({ op: "learned", id: s.id, allowIndex: e.rule, address: e.address, expiresAt });
      }
      pruneLearnedUntil(s, now);
    }
    reply(response);
  }

  /** Bounds what the worker remembers of the sets: no more than twice what is live (and the kernel holds at most LEARNED_SET_SIZE per set). */
  function pruneLearnedUntil(s: Sandbox, now: number): void {
    if (s.learnedUntil.size <= s.learnedPruneAt) return;
    for (const [key, until] of s.learnedUntil) if (until <= now) s.learnedUntil.delete(key);
    s.learnedPruneAt = Math.max(LEARNED_UNTIL_PRUNE_AT, 2 * s.learnedUntil.size);
  }

  // ---- the sandbox's sockets ----

  function onUdp(s: Sandbox): void {
    for (let i = 0; i < DGRAM_BATCH && !s.closed; i++) {
      const n = recvFrom(s.fds.dnsUdp, buf, from, fromLen);
      if (n === -ECONNREFUSED) continue;
      if (n < 0) return;
      const to = from.slice(0, fromLen[0]);
      const bytes = buf.slice(0, n);
      let limit = 512;
      try {
        limit = udpLimit(parseMessage(bytes));
      } catch {}
      handleQuery(s, bytes, (response) => {
        if (!response || s.closed) return;
        const out = encodeAnswer(response, limit);
        sendTo(s.fds.dnsUdp, out, out.length, to);
      });
    }
  }

  function onAccept(s: Sandbox): void {
    for (let i = 0; i < 16; i++) {
      const fd = acceptNB(s.fds.dnsTcp);
      if (fd < 0) return;
      if (s.conns.size >= MAX_TCP_CONNECTIONS) {
        close(fd);
        continue;
      }
      madeGarbage();
      const c: Conn = {
        sandbox: s,
        fd,
        frames: new TcpFrames(),
        out: [],
        queued: 0,
        waiting: 0,
        lastActive: Date.now(),
        frameSince: 0,
        eof: false,
        watchingOut: false,
        closed: false,
      };
      try {
        watch(fd, EPOLLIN | EPOLLRDHUP, (_fd, events) => onConn(c, events));
      } catch {
        close(fd);
        continue;
      }
      s.conns.add(c);
    }
  }

  function closeConn(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    madeGarbage();
    unwatch(c.fd);
    close(c.fd);
    c.sandbox.conns.delete(c);
  }

  function onConn(c: Conn, events: number): void {
    if (events & EPOLLOUT) flushConn(c);
    if (c.closed || c.eof || !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    for (let i = 0; i < 16; i++) {
      const n = readNB(c.fd, buf);
      if (n === -EAGAIN) return;
      if (n <= 0) {
        // The client is done sending: its answers still go out, then the connection closes.
        c.eof = true;
        if (n < 0 || c.waiting === 0) closeConn(c);
        else rewatch(c);
        return;
      }
      const now = Date.now();
      c.lastActive = now;
      const frames = c.frames.push(buf.subarray(0, n));
      // The message still incomplete began in this read if one completed in it (or none was being read).
      if (c.frames.pending === 0) c.frameSince = 0;
      else if (frames.length > 0 || c.frameSince === 0) c.frameSince = now;
      for (const frame of frames) {
        c.waiting++;
        handleQuery(c.sandbox, frame, (response) => {
          c.waiting--;
          c.lastActive = Date.now();
          if (c.closed) return;
          if (response) sendConn(c, framed(encodeAnswer(response)));
          if (c.eof && c.waiting === 0 && c.out.length === 0) closeConn(c);
        });
        if (c.closed) return;
      }
    }
  }

  function rewatch(c: Conn): void {
    unwatch(c.fd);
    const events = (c.eof ? 0 : EPOLLIN | EPOLLRDHUP) | (c.watchingOut ? EPOLLOUT : 0);
    try {
      watch(c.fd, events, (_fd, e) => onConn(c, e));
    } catch {
      closeConn(c);
    }
  }

  function sendConn(c: Conn, bytes: Uint8Array): void {
    c.out.push(bytes);
    c.queued += bytes.length;
    // A client that sends queries and never reads its answers would grow this queue without end.
    if (c.queued > MAX_TCP_QUEUED) {
      closeConn(c);
      return;
    }
    if (c.out.length === 1) flushConn(c);
  }

  function flushConn(c: Conn): void {
    while (c.out.length > 0) {
      const head = c.out[0]!;
      const n = writeNB(c.fd, head, head.length);
      if (n === -EAGAIN) break;
      if (n < 0) {
        closeConn(c);
        return;
      }
      c.queued -= n;
      if (n < head.length) c.out[0] = head.subarray(n);
      else c.out.shift();
    }
    if (c.eof && c.waiting === 0 && c.out.length === 0) {
      closeConn(c);
      return;
    }
    // EPOLLOUT only while an answer waits for room (level-triggered: it would fire on and on).
    if (c.watchingOut !== c.out.length > 0) {
      c.watchingOut = c.out.length > 0;
      rewatch(c);
    }
  }

  function onNflog(s: Sandbox): void {
    let packets: NflogPacket[];
    try {
      packets = readNflog(s.fds.nflog);
    } catch (e) {
      // Stop reading it rather than spin on it; the resolver goes on.
      unwatch(s.fds.nflog);
      post({ op: "error", message: `cannot read the refusals of sandbox ${s.id}, none will be reported: ${message(e)}` });
      return;
    }
    if (packets.length > 0) madeGarbage();
    for (const packet of packets) {
      const r = loggedRefusal(s.policy, packet);
      if (r) refuse(s, r);
    }
  }

  // ---- attach, detach ----

  function attach(m: EgressAttach): void {
    const old = sandboxes.get(m.id);
    if (old) detach(old);
    let s: Sandbox;
    try {
      s = {
        id: m.id,
        policy: compilePolicy(m.policy, m.context),
        upstreams: [...m.upstreams],
        fds: m.fds,
        inFlight: 0,
        conns: new Set(),
        closed: false,
        learnedUntil: new Map(),
        learnedPruneAt: LEARNED_UNTIL_PRUNE_AT,
      };
      watch(m.fds.dnsUdp, EPOLLIN, () => onUdp(s));
      watch(m.fds.dnsTcp, EPOLLIN, () => onAccept(s));
      // No NFLOG socket (-1): the resolver alone.
      if (m.fds.nflog >= 0) watch(m.fds.nflog, EPOLLIN, () => onNflog(s));
    } catch (e) {
      for (const fd of Object.values(m.fds)) {
        unwatch(fd);
        close(fd);
      }
      post({ op: "attach-failed", id: m.id, message: message(e) });
      return;
    }
    sandboxes.set(m.id, s);
    post({ op: "attached", id: m.id });
  }

  function detach(s: Sandbox): void {
    s.closed = true;
    sandboxes.delete(s.id);
    madeGarbage();
    for (const p of [...pendings]) if (p.sandbox === s) settle(p);
    for (const c of [...s.conns]) closeConn(c);
    for (const fd of Object.values(s.fds)) {
      unwatch(fd);
      close(fd);
    }
  }

  // ---- timers: upstream deadlines, idle or slow TCP connections, garbage ----

  const tcpIdleMs = init.tcpIdleMs ?? TCP_IDLE_MS;
  const tcpFrameMs = init.tcpFrameMs ?? TCP_FRAME_MS;
  const sweepMs = Math.min(1000, Math.max(10, Math.floor(Math.min(tcpIdleMs, tcpFrameMs) / 4)));
  let lastSweep = Date.now();
  function timers(now: number): number {
    let next = -1;
    const soonest = (ms: number) => {
      next = next < 0 ? ms : Math.min(next, ms);
    };
    for (const p of [...pendings]) {
      if (p.deadline <= now) ask(p, p.server + 1);
      if (pendings.has(p)) soonest(Math.max(1, p.deadline - now));
    }
    let conns = 0;
    if (now - lastSweep >= sweepMs) {
      lastSweep = now;
      for (const s of sandboxes.values())
        for (const c of [...s.conns]) {
          const idle = c.waiting === 0 && c.out.length === 0 && now - c.lastActive >= tcpIdleMs;
          // A message trickling in a byte at a time is never idle: it has its own deadline.
          const slow = c.frameSince > 0 && now - c.frameSince >= tcpFrameMs;
          if (idle || slow) closeConn(c);
        }
    }
    for (const s of sandboxes.values()) conns += s.conns.size;
    if (conns > 0) soonest(sweepMs);
    const gc = collectIfDue(now);
    if (gc >= 0) soonest(gc);
    return next;
  }

  function madeGarbage(): void {
    gcPacer.madeGarbage();
  }
  function collectIfDue(now: number): number {
    return gcPacer.collectIfDue(now);
  }

  // ---- commands ----

  let running = true;
  const controlPipe = new LinePipe(init.controlFd);
  function command(m: EgressCommand): void {
    switch (m.op) {
      case "attach": {
        const { op: _op, ...a } = m;
        attach(a);
        break;
      }
      case "detach": {
        const s = sandboxes.get(m.id);
        if (s) detach(s);
        break;
      }
      case "exit":
        running = false;
        break;
    }
  }
  watch(init.controlFd, EPOLLIN, () => {
    madeGarbage();
    if (!controlPipe.drain((line) => command(JSON.parse(line) as EgressCommand))) running = false;
  });
  const onEvent = (fd: number, events: number) => handlers.get(fd)?.(fd, events);

  post({ op: "started" });
  try {
    while (running) ep.wait(timers(Date.now()), onEvent);
  } catch (e) {
    // A bug: the main thread starts another worker and attaches every sandbox
    // again, so their fds stay open; what only this thread knows is closed.
    for (const p of [...pendings]) settle(p);
    for (const s of sandboxes.values()) for (const c of [...s.conns]) closeConn(c);
    close(ep.fd);
    throw e;
  }

  for (const s of [...sandboxes.values()]) detach(s);
  close(init.controlFd);
  close(ep.fd);
  post({ op: "exited" });
}

/** What a policy without rules keeps of an answer: all of it (--egress-log-only answers what it would refuse). */
const OPEN_POLICY: CompiledPolicy = { allow: [], deny: [], hosts: [], logOnly: true, own: [], host: [] };

/** The answer's bytes; one that cannot be written (a record burrow cannot encode) is SERVFAIL. */
function encodeAnswer(response: DnsMessage, maxSize?: number): Uint8Array {
  try {
    return encodeMessage(response, maxSize);
  } catch {
    return encodeMessage({ ...response, header: { ...response.header, rcode: RCODE.SERVFAIL }, answers: [], authorities: [], additionals: [] });
  }
}

self.onmessage = async (event: MessageEvent<EgressInit>) => {
  if (event.data.op !== "init") return;
  try {
    const init = event.data;
    const learn: Learner = init.learnerModule ? (await import(init.learnerModule)).learnAddresses : realLearnAddresses;
    const readNflog: NflogReader = init.nflogModule ? (await import(init.nflogModule)).readNflog : realReadNflog;
    run(init, learn, readNflog);
  } catch (e) {
    post({ op: "fatal", message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
};
