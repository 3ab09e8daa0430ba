// The daemon's side of "check the socket peer's uid with SO_PEERCRED on both
// sides" (issue 10 item 3; the CLI's side is src/client/trust.ts).
//
// Bun.serve (1.4.5) gives a request no way to its connection: no fd, no peer
// credentials (requestIP is null on a unix socket), and no hook at accept.
// But its accepted connections are ordinary fds of this process, and while
// a request's handler runs synchronously its connection is still open (Bun
// has not answered yet). So at the start of every request the daemon lists
// its own fds and asks the kernel about each control connection it has not
// seen before: a socket is one when getsockname() names a control socket
// this daemon bound (an accepted unix socket reports its listener's path as
// bound, even after the rename into control.sock) and it is not the
// listener itself (SO_ACCEPTCONN). Its SO_PEERCRED uid must be the daemon's
// own: uid 0 of the holder's user namespace when rootless, where the user
// appears as 0 and any other user, host root included, as the overflow uid
// 65534; root when rootful.
//
// A connection with another peer is shut down at once (shutdown(), never
// close(): Bun owns the fd and closes it when it sees the end), and while
// one is open no request is served: the request being handled may be the
// one that came over it, and nothing tells which connection carried it.
// Checked connections are remembered by (fd, SO_COOKIE), a socket identity
// the kernel never reuses, so a connection is looked at once; a request then
// costs one getdents64 of /proc/self/fd and one getsockopt per open fd
// (docs/benchmarks.md, "Peer check").
//
// Main thread only: Bun accepts on it, so no control connection can appear
// or go while a check runs; fds of other threads that change meanwhile are
// never control connections.
import { log } from "../log.ts";
import { shutdown, SHUT_RDWR } from "../sys/sockets.ts";
import { isListening, openFds, peerCredOfFd, socketCookie, unixSocketPath, type PeerCred } from "../sys/peercred.ts";
import { messageOf } from "../errors.ts";

interface Seen {
  cookie: bigint;
  /** The peer of a control connection that is not this daemon's uid; null for everything else. */
  foreign: PeerCred | null;
  /** The check that last saw this fd open. */
  round: number;
}

export class ControlPeers {
  /** Every path this daemon bound a control listener to (a logout's rebuild binds a new one). */
  private readonly bound = new Set<string>();
  private readonly seen = new Map<number, Seen>();
  private round = 0;
  /** How many new connections were looked at (each once; tests and benchmarks read it). */
  classified = 0;

  constructor(readonly uid: number) {}

  /** Called with the path of each control listener, before it accepts. */
  listening(path: string): void {
    this.bound.add(path);
  }

  /**
   * The peers of the open control connections that are not this daemon's
   * uid; each is shut down when first seen. Empty when every connection is
   * the daemon's own user's. Synchronous, at the start of a request.
   */
  foreign(): PeerCred[] {
    const round = ++this.round;
    const found: PeerCred[] = [];
    for (const fd of openFds()) {
      const cookie = socketCookie(fd);
      if (cookie === null) continue;
      let s = this.seen.get(fd);
      if (!s || s.cookie !== cookie) {
        s = { cookie, foreign: this.classify(fd), round };
        this.seen.set(fd, s);
      }
      s.round = round;
      if (s.foreign) found.push(s.foreign);
    }
    for (const [fd, s] of this.seen) if (s.round !== round) this.seen.delete(fd);
    return found;
  }

  /** A new socket fd: the foreign peer of a control connection (shut down now), or null. */
  private classify(fd: number): PeerCred | null {
    const path = unixSocketPath(fd);
    if (path === null || !this.bound.has(path)) return null;
    this.classified++;
    let peer: PeerCred;
    try {
      if (isListening(fd)) return null;
      peer = peerCredOfFd(fd);
    } catch (e) {
      // A control connection whose peer cannot be read is not trusted.
      log.warn(`control connection (fd ${fd}): ${messageOf(e)}; disconnecting it`);
      peer = { pid: 0, uid: -1, gid: -1 };
    }
    if (peer.uid === this.uid) return null;
    log.warn(`disconnecting a connection to the control socket from pid ${peer.pid}: it runs as uid ${peer.uid}, not as this daemon's uid ${this.uid}`);
    try {
      shutdown(fd, SHUT_RDWR);
    } catch (e) {
      log.warn(`shutdown of control connection fd ${fd}: ${messageOf(e)}`);
    }
    return peer;
  }
}

/** The one-line refusal of a request while `peers` are connected to the control socket `socket`. */
export function peerRefusal(peers: PeerCred[], socket: string): string {
  const who = [...new Set(peers.map((p) => `pid ${p.pid}, uid ${p.uid === -1 ? "unknown" : p.uid}`))];
  const list = who.length > 3 ? `${who.slice(0, 3).join("; ")} and ${who.length - 3} more` : who.join("; ");
  return `refused: another user's process (${list} as the daemon sees it) connected to the control socket ${socket}; it was cut off, and this request is refused with it (the daemon cannot tell which connection sent it); make sure nobody else can reach the socket`;
}
