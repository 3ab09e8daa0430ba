// The connector: ONE Worker thread that serves every published port of every
// sandbox (a Worker costs ≈ 6.6 MB RSS, so never one per sandbox). It accepts
// on the host-side sockets the main thread bound, makes the sandbox-side
// sockets inside the sandbox's netns, and moves the bytes:
//
//   TCP  splice(2) through a pipe per direction, edge-triggered epoll: the
//        bytes never enter JS. Half-close is passed on (FIN → shutdown(WR)).
//   UDP  one connected socket inside the sandbox per client address (a
//        "flow", like a NAT mapping), expired after idleMs without traffic.
//
// Network namespaces: for each new connection or flow this thread setns()s
// into the sandbox's pinned netns, creates the socket, and parks again in an
// empty netns of its own, synchronously (src/ports/netns-hop.ts). A socket
// stays in the netns it was created in, so it keeps working from here.
//
// The thread sits in epoll_wait, so Worker messages cannot reach it after
// `init`: commands arrive as JSON lines on a pipe in the epoll set
// (src/ports/connector-protocol.ts).
//
// Garbage: JavaScriptCore collects a thread's heap on timers that run from
// the thread's event loop, which this thread never returns to; left alone
// it collected only when an allocation threshold of many MB was crossed,
// and the daemon's RSS grew ~5 KB per published port and connection (issue
// 10's soak). So the loop collects itself: once it has been idle for
// GC_IDLE_MS after making garbage (a connection, a flow, a command), and at
// least every GC_MAX_MS while it keeps making some. One collection of this
// small heap takes ~0.7 ms; an idle connector wakes no more than before.
import { close, openRO } from "../sys/ns.ts";
import { SOCK_DGRAM, SOCK_STREAM } from "../sys/net.ts";
import { connectStart, connectStartFrom, isIPv6Sockaddr, ownGlobalIPv6 } from "../sys/netio.ts";
import { setNonBlocking } from "../sys/socket-twin.ts";
import {
  acceptNB,
  bindUdpSocket,
  listenTcpSocket,
  EAGAIN,
  Epoll,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  LinePipe,
  peerName,
  pipe,
  readNB,
  recvFrom,
  sendTo,
  setNoDelay,
  setPipeSize,
  SHUT_WR,
  shutdown,
  socketName,
  spliceNB,
  writeNB,
} from "../sys/sockets.ts";
import {
  BIG_PIPE,
  BIG_PIPE_BUDGET,
  COUNTER,
  type ConnectorCommand,
  type ConnectorInit,
  type ConnectorReport,
  type EgressFds,
  type SourceAddress,
  type Target,
} from "./connector-protocol.ts";
import { openNetfilterSocket } from "../sys/nfnetlink.ts";
import { openNflogSocket } from "../sys/nflog.ts";
import { NFLOG_GROUP } from "../egress/nft.ts";
import { CLIENT_MARK, clientSource, familyOf, prepareClientAddressRouting } from "./client-address.ts";
import { createHopper } from "./netns-hop.ts";
import { GcPacer } from "../gc-pacer.ts";

declare const self: Worker;
const post = (m: ConnectorReport) => self.postMessage(m);

const EMFILE = 24;
const ENFILE = 23;
const ECONNREFUSED = 111;
const CONN_EVENTS = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
/** Datagrams handled per readiness event before the loop serves others. */
const DGRAM_BATCH = 256;
/** Quiet time after the last garbage-making event before the loop collects. */
const GC_IDLE_MS = 1000;
/** Longest time garbage waits for a collection while events keep coming. */
const GC_MAX_MS = 5000;

type End = { fd: number; readable: boolean; writable: boolean };
/**
 * In the sandbox's netns: the address a client goes to, the sandbox's own
 * global IPv6 address for an IPv6 client when it has one (not while its
 * address is still tentative), else its IPv4 address.
 */
function targetHost(target: Target, clientSockaddr: () => Uint8Array): string {
  return (target.ipv6 && isIPv6Sockaddr(clientSockaddr()) && (target.host6 ?? ownGlobalIPv6())) || target.host;
}

/** One direction of a TCP connection: src → pipe → dst. */
type Dir = { src: End; dst: End; pr: number; pw: number; size: number; inPipe: number; eof: boolean; shut: boolean };
type Conn = { listener: TcpListener; client: End; upstream: End; up: Dir; down: Dir; done: boolean };
/** keepClientAddress: the sandbox's netns routes replies to client addresses back (src/ports/client-address.ts). */
type TcpListener = { protocol: "tcp"; id: number; fd: number; target: Target; keepClientAddress: boolean; conns: Set<Conn> };
type Flow = { listener: UdpListener; key: string; fd: number; client: Uint8Array; lastActive: number };
type UdpListener = { protocol: "udp"; id: number; fd: number; target: Target; idleMs: number; flows: Map<string, Flow> };
type Listener = TcpListener | UdpListener;

/** The socket the ruleset's NFLOG refusals are read from (bound to the ruleset's group), in the calling thread's netns. */
function openRefusalLogSocket(): number {
  return openNflogSocket(NFLOG_GROUP);
}

/**
 * In the sandbox's netns (the caller hopped in): burrow's resolver sockets
 * on its loopback and the netfilter sockets of its ruleset. Port 53 is
 * allowed: this thread holds CAP_NET_BIND_SERVICE in the netns's owner.
 * Nothing is left open when one of them fails.
 */
function makeEgressSockets(resolver: string): EgressFds {
  const made: number[] = [];
  const keep = (fd: number) => {
    made.push(fd);
    return fd;
  };
  try {
    return {
      dnsUdp: keep(bindUdpSocket(resolver, 53).fd),
      dnsTcp: keep(listenTcpSocket(resolver, 53).fd),
      nft: keep(openNetfilterSocket()),
      nflog: keep(openRefusalLogSocket()),
    };
  } catch (e) {
    for (const fd of made) close(fd);
    throw e;
  }
}

function run(init: ConnectorInit): void {
  const counters = new Int32Array(init.counters);
  const gcPacer = new GcPacer(GC_IDLE_MS, GC_MAX_MS, () => Atomics.add(counters, COUNTER.collections, 1));
  const hop = createHopper((e) => {
    post({ op: "fatal", message: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  });
  const ep = new Epoll(512);
  /** What to do when an fd is ready; every fd in the epoll set has one. */
  const handlers = new Map<number, (fd: number, events: number) => void>();
  const listeners = new Map<number, Listener>(); // by id
  let bigPipes = 0;
  // A spare fd to give back when accept() hits EMFILE, so a pending
  // connection can be accepted and dropped instead of spinning (libev's trick).
  let reserve = openRO("/dev/null");

  // ---- TCP ----

  const newDir = (src: End, dst: End, pr: number, pw: number): Dir => ({ src, dst, pr, pw, size: 65536, inPipe: 0, eof: false, shut: false });

  function closeConn(c: Conn): void {
    if (c.done) return;
    c.done = true;
    madeGarbage();
    handlers.delete(c.client.fd);
    handlers.delete(c.upstream.fd);
    c.listener.conns.delete(c);
    for (const d of [c.up, c.down]) {
      if (d.size >= BIG_PIPE) bigPipes--;
      close(d.pr);
      close(d.pw);
    }
    close(c.client.fd);
    close(c.upstream.fd);
    Atomics.sub(counters, COUNTER.tcpActive, 1);
  }

  /** Moves what it can in one direction; false when the connection failed. */
  function pump(d: Dir): boolean {
    for (;;) {
      let progressed = false;
      if (!d.eof && d.src.readable && d.inPipe < d.size) {
        const n = spliceNB(d.src.fd, d.pw, d.size - d.inPipe);
        if (n > 0) {
          d.inPipe += n;
          progressed = true;
        } else if (n === 0) {
          d.eof = true;
          progressed = true;
        } else if (n === -EAGAIN) {
          // With an empty pipe EAGAIN means the socket is drained. With data
          // in the pipe it may only mean "no free pipe slot": try again once
          // the pipe empties, or the edge would be lost.
          if (d.inPipe === 0) d.src.readable = false;
        } else {
          return false;
        }
      }
      if (d.inPipe > 0 && d.dst.writable) {
        const n = spliceNB(d.pr, d.dst.fd, d.inPipe);
        if (n > 0) {
          d.inPipe -= n;
          progressed = true;
        } else if (n === -EAGAIN) {
          d.dst.writable = false;
        } else {
          return false;
        }
      }
      if (!progressed) break;
    }
    // A full pipe on a busy connection: a bigger one lets each splice move more.
    if (d.inPipe >= d.size && d.size < BIG_PIPE && bigPipes < BIG_PIPE_BUDGET) {
      const size = setPipeSize(d.pw, BIG_PIPE);
      if (size >= BIG_PIPE) {
        d.size = size;
        bigPipes++;
      }
    }
    if (d.eof && d.inPipe === 0 && !d.shut) {
      d.shut = true;
      shutdown(d.dst.fd, SHUT_WR); // pass the FIN on: half-close
    }
    return true;
  }

  function onConn(c: Conn, fd: number, events: number): void {
    const end = fd === c.client.fd ? c.client : c.upstream;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) end.readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) end.writable = true;
    // A refused or reset sandbox side shows up as an error from splice.
    if (!pump(c.up) || !pump(c.down) || (c.up.shut && c.down.shut)) closeConn(c);
  }

  function accept(l: TcpListener): void {
    for (let i = 0; i < 64; i++) {
      const cfd = acceptNB(l.fd);
      if (cfd < 0) {
        if (cfd === -EMFILE || cfd === -ENFILE) {
          close(reserve);
          const dropped = acceptNB(l.fd);
          if (dropped >= 0) close(dropped);
          reserve = openRO("/dev/null");
        }
        return; // EAGAIN: none left (the listener is level-triggered)
      }
      madeGarbage();
      let ufd = -1;
      const pipes: number[] = [];
      try {
        // Either end of an accepted connection has the client's family (an IPv4 client on "::" is ::ffff:...):
        // the peer, read anyway for the client's address, spares a getsockname.
        const peer = l.keepClientAddress ? peerName(cfd) : null;
        ufd = hop.inNetns(l.target.netnsPath, () => {
          const host = targetHost(l.target, () => (peer?.length ? peer : socketName(cfd)));
          const from = peer && clientSource(peer, familyOf(host));
          if (from) {
            try {
              const fd = connectStartFrom(host, l.target.port, SOCK_STREAM, from, CLIENT_MARK);
              Atomics.add(counters, COUNTER.tcpClientAddress, 1);
              return fd;
            } catch {
              // The client's address:port is busy in the sandbox (one client
              // on two published ports of it at once), or the kernel refuses:
              // this connection goes in as the forwarder, as it would without.
            }
          }
          return connectStart(host, l.target.port, SOCK_STREAM);
        });
        pipes.push(...pipe(), ...pipe());
      } catch {
        // Netns gone, no route, out of fds: the client sees the connection
        // closed, as with rootlessport.
        Atomics.add(counters, COUNTER.tcpFailed, 1);
        for (const f of [cfd, ufd, ...pipes]) if (f >= 0) close(f);
        continue;
      }
      setNoDelay(cfd);
      setNoDelay(ufd);
      const client: End = { fd: cfd, readable: false, writable: false };
      const upstream: End = { fd: ufd, readable: false, writable: false };
      const c: Conn = {
        listener: l,
        client,
        upstream,
        up: newDir(client, upstream, pipes[0]!, pipes[1]!),
        down: newDir(upstream, client, pipes[2]!, pipes[3]!),
        done: false,
      };
      l.conns.add(c);
      const handler = (fd: number, events: number) => onConn(c, fd, events);
      handlers.set(cfd, handler);
      handlers.set(ufd, handler);
      Atomics.add(counters, COUNTER.tcpActive, 1);
      Atomics.add(counters, COUNTER.tcpAccepted, 1);
      try {
        ep.add(cfd, CONN_EVENTS);
        ep.add(ufd, CONN_EVENTS);
      } catch {
        closeConn(c); // out of epoll watches (fs.epoll.max_user_watches) or memory
      }
    }
  }

  // ---- UDP ----

  const dgram = new Uint8Array(65536);
  const from = new Uint8Array(28);
  const fromLen = new Uint32Array(1);
  let flowCount = 0;

  function closeFlow(f: Flow): void {
    if (f.listener.flows.get(f.key) !== f) return;
    madeGarbage();
    f.listener.flows.delete(f.key);
    handlers.delete(f.fd);
    close(f.fd);
    flowCount--;
    Atomics.sub(counters, COUNTER.udpFlows, 1);
  }

  /** Datagrams from clients on the host: each goes out on its client's flow. */
  function onUdpHost(l: UdpListener): void {
    madeGarbage(); // each datagram's client address is copied
    for (let i = 0; i < DGRAM_BATCH; i++) {
      const n = recvFrom(l.fd, dgram, from, fromLen);
      if (n < 0) return; // EAGAIN, or an error UDP has nothing to do about
      const client = from.slice(0, fromLen[0]);
      const key = Buffer.from(client).toString("latin1");
      let f = l.flows.get(key);
      if (!f) {
        let fd: number;
        try {
          fd = hop.inNetns(l.target.netnsPath, () =>
            connectStart(
              targetHost(l.target, () => client),
              l.target.port,
              SOCK_DGRAM,
            ),
          );
        } catch {
          continue; // drop the datagram, as a NAT without a route would
        }
        try {
          ep.add(fd, EPOLLIN);
        } catch {
          close(fd);
          continue;
        }
        const flow: Flow = { listener: l, key, fd, client, lastActive: 0 };
        f = flow;
        l.flows.set(key, flow);
        handlers.set(fd, () => onUdpFlow(flow));
        flowCount++;
        Atomics.add(counters, COUNTER.udpFlows, 1);
      }
      f.lastActive = Date.now();
      // A pending ICMP "port unreachable" from an earlier datagram fails the
      // next send once; send again rather than lose this datagram too.
      if (writeNB(f.fd, dgram, n) === -ECONNREFUSED) writeNB(f.fd, dgram, n);
    }
  }

  /** Datagrams from the sandbox on a flow: back to that flow's client. */
  function onUdpFlow(f: Flow): void {
    for (let i = 0; i < DGRAM_BATCH; i++) {
      const n = readNB(f.fd, dgram);
      if (n === -ECONNREFUSED) continue; // the error is consumed; read on
      if (n < 0) return;
      f.lastActive = Date.now();
      sendTo(f.listener.fd, dgram, n, f.client);
    }
  }

  let lastSweep = Date.now();
  function sweepFlows(now: number): void {
    lastSweep = now;
    for (const l of listeners.values()) {
      if (l.protocol !== "udp") continue;
      for (const f of [...l.flows.values()]) if (now - f.lastActive >= l.idleMs) closeFlow(f);
    }
  }
  // ---- garbage (see the top of this file) ----

  function madeGarbage(): void {
    gcPacer.madeGarbage();
  }
  function collectIfDue(now: number): number {
    return gcPacer.collectIfDue(now);
  }

  /** How long epoll may sleep: forever without flows or garbage, else until the next sweep or collection is due. */
  function waitTimeout(gcIn: number): number {
    if (flowCount === 0) return gcIn;
    let idle = Infinity;
    for (const l of listeners.values()) if (l.protocol === "udp" && l.flows.size > 0) idle = Math.min(idle, l.idleMs);
    const sweep = Math.max(10, Math.min(1000, Math.floor(idle / 4)));
    return gcIn < 0 ? sweep : Math.min(sweep, gcIn);
  }

  // ---- the client's address (src/ports/client-address.ts) ----

  /**
   * Each sandbox netns's reply routing, set up by its first port that asks
   * (a pin path names one sandbox's netns for its whole life, never
   * reused) and forgotten with its last TCP listener. A restarted worker
   * sets it up again: it is idempotent.
   */
  const routing = new Map<string, SourceAddress>();
  function clientRouting(target: Target): SourceAddress {
    const known = routing.get(target.netnsPath);
    if (known) return known;
    let answer: SourceAddress;
    try {
      answer = hop.inNetns(target.netnsPath, () => prepareClientAddressRouting(target.ipv6 === true));
    } catch (e) {
      answer = { sourceAddress: "forwarder", why: `cannot enter the sandbox's network namespace: ${e instanceof Error ? e.message : String(e)}` };
    }
    routing.set(target.netnsPath, answer);
    return answer;
  }
  function forgetRouting(netnsPath: string): void {
    for (const l of listeners.values()) if (l.protocol === "tcp" && l.target.netnsPath === netnsPath) return;
    routing.delete(netnsPath);
  }

  // ---- listeners and commands ----

  /** Listeners lent to an accelerated sandbox's server (by id): out of the epoll set. */
  const paused = new Set<number>();

  function unlisten(l: Listener): void {
    listeners.delete(l.id);
    paused.delete(l.id);
    handlers.delete(l.fd);
    close(l.fd);
    if (l.protocol === "tcp") {
      for (const c of [...l.conns]) closeConn(c);
      forgetRouting(l.target.netnsPath);
    } else for (const f of [...l.flows.values()]) closeFlow(f);
  }

  let running = true;
  const controlPipe = new LinePipe(init.controlFd);

  function onControl(): void {
    madeGarbage();
    // false: the main thread closed its end.
    if (!controlPipe.drain((line) => command(JSON.parse(line) as ConnectorCommand))) running = false;
  }

  function serve(l: Listener, handler: () => void): void {
    try {
      ep.add(l.fd, EPOLLIN);
    } catch (e) {
      close(l.fd);
      post({ op: "error", message: `cannot serve a published port: ${e instanceof Error ? e.message : String(e)}` });
      return;
    }
    listeners.set(l.id, l);
    handlers.set(l.fd, handler);
  }

  function command(m: ConnectorCommand): void {
    switch (m.op) {
      case "listen-tcp": {
        const target = { netnsPath: m.netnsPath, host: m.host, ipv6: m.ipv6, host6: m.host6, port: m.port };
        const answer: SourceAddress = m.keepClientAddress ? clientRouting(target) : { sourceAddress: "forwarder" };
        const l: TcpListener = { protocol: "tcp", id: m.id, fd: m.fd, target, keepClientAddress: answer.sourceAddress === "client", conns: new Set() };
        serve(l, () => accept(l));
        if (m.keepClientAddress) post({ op: "listening", id: m.id, ...answer });
        break;
      }
      case "listen-udp": {
        const target = { netnsPath: m.netnsPath, host: m.host, ipv6: m.ipv6, host6: m.host6, port: m.port };
        const l: UdpListener = { protocol: "udp", id: m.id, fd: m.fd, target, idleMs: m.idleMs, flows: new Map() };
        serve(l, () => onUdpHost(l));
        break;
      }
      case "unlisten": {
        const l = listeners.get(m.id);
        if (l) unlisten(l);
        break;
      }
      case "pause": {
        const l = listeners.get(m.id);
        if (l && !paused.has(m.id)) {
          ep.remove(l.fd);
          paused.add(m.id);
        }
        post({ op: "paused", id: m.id });
        break;
      }
      case "resume": {
        const l = listeners.get(m.id);
        if (!l || !paused.delete(m.id)) break;
        try {
          // The server may have made the shared open file blocking: accept here must never wait.
          setNonBlocking(l.fd, true);
          ep.add(l.fd, EPOLLIN);
        } catch (e) {
          post({ op: "error", message: `cannot serve a published port again: ${e instanceof Error ? e.message : String(e)}` });
        }
        break;
      }
      case "egress-sockets": {
        try {
          post({ op: "egress-sockets", id: m.id, fds: hop.inNetns(m.netnsPath, () => makeEgressSockets(m.resolver)) });
        } catch (e) {
          post({ op: "egress-sockets", id: m.id, error: e instanceof Error ? e.message : String(e) });
        }
        break;
      }
      case "exit":
        running = false;
        break;
    }
  }

  handlers.set(init.controlFd, onControl);
  ep.add(init.controlFd, EPOLLIN);
  const onEvent = (fd: number, events: number) => handlers.get(fd)?.(fd, events);

  post({ op: "started" });
  while (running) {
    ep.wait(waitTimeout(collectIfDue(Date.now())), onEvent);
    if (flowCount > 0) {
      const now = Date.now();
      if (now - lastSweep >= 250) sweepFlows(now);
    }
  }

  for (const l of [...listeners.values()]) unlisten(l);
  close(init.controlFd);
  close(ep.fd);
  close(reserve);
  hop.close();
  post({ op: "exited" });
}

self.onmessage = (event: MessageEvent<ConnectorInit>) => {
  if (event.data.op !== "init") return;
  try {
    run(event.data);
  } catch (e) {
    post({ op: "fatal", message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
};
