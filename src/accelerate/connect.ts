// One trapped connect(), answered (docs/accelerate.md): the sockaddr is read
// once into our memory and only that copy is used; the notification is
// checked still valid after the read; the policy (`decide`) says whether the
// destination goes through a host socket; the process's socket is then
// replaced by a twin made here (its options copied from the socket itself)
// and connected the way the process asked: a non-blocking connect answers
// EINPROGRESS at once, a blocking one is answered when the handshake ends.
// A TCP connect the sandbox's egress policy refuses is answered ECONNREFUSED
// here, with no host socket (what the ruleset's TCP reset gives inside).
// Anything unexpected is answered CONTINUE: the call then runs in the
// sandbox's own namespace, as without --accelerate.
import { isIPv4 } from "../ip-syntax.ts";
import type { Refusal } from "../egress/refusals.ts";
import { log } from "../log.ts";
import { formatIp } from "../net/cni/ip.ts";
import { ERRNO } from "../sys/errno.ts";
import { AF_INET, AF_INET6, SOCK_STREAM } from "../sys/net.ts";
import { sockaddrOf } from "../sys/netio.ts";
import { close } from "../sys/ns.ts";
import {
  answerNotification,
  closeOnExec,
  copyTrappedFd,
  installProcessFd,
  type Notification,
  notificationValid,
  processFdFlags,
  readProcessMemory,
} from "../sys/seccomp.ts";
import { connectSockaddr, EINPROGRESS, setNonBlocking, socketError, socketShape, tcpTwin, waitWritable } from "../sys/socket-twin.ts";

export interface Destination {
  ip: string;
  port: number;
}

/**
 * Where a connect goes: a host socket to `host` (the same destination, or
 * the host alias's loopback; `wouldRefuse`: what the egress policy would
 * have refused under --egress-log-only), refused by the egress policy, or
 * the process's own call.
 */
export type Verdict = { host: Destination; wouldRefuse?: Refusal } | { refuse: Refusal } | { continue: string };

/** A sockaddr_in or sockaddr_in6 read from the process; null for anything else. Pure. */
export function parseInetSockaddr(b: Uint8Array): Destination | null {
  if (b.length < 16) return null;
  const family = b[0]! | (b[1]! << 8);
  const port = (b[2]! << 8) | b[3]!;
  if (family === AF_INET && b.length === 16) return { ip: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port };
  if (family === AF_INET6 && b.length === 28) {
    let value = 0n;
    for (let i = 8; i < 24; i++) value = (value << 8n) | BigInt(b[i]!);
    // ::ffff:a.b.c.d, as a dual-stack socket connects to an IPv4 peer.
    if (value >> 32n === 0xffffn) return { ip: formatIp(4, value & 0xffffffffn), port };
    return { ip: formatIp(6, value), port };
  }
  return null;
}

export type ConnectOutcome =
  | { answered: "continue"; reason: string }
  | { answered: "host"; errno: number; wouldRefuse?: Refusal }
  /** The egress policy refused it: answered ECONNREFUSED, no host socket made. */
  | { answered: "refused"; refusal: Refusal }
  /** A blocking connect under way: call `finish` once `fd` is writable (or hung up), or `abandon` to give up. */
  | { pending: { fd: number; finish: () => number; abandon: () => void }; wouldRefuse?: Refusal };

/**
 * Handles one connect notification. `decide` sees only burrow's copy of the
 * destination and the trapped task's pid. `committing` is called right
 * before the host socket is installed over the process's fd (from then on
 * the call must never be let through as the process made it).
 */
export function acceleratedConnect(
  listener: number,
  n: Notification,
  decide: (dest: Destination, pid: number) => Verdict,
  committing: () => void = () => {},
): ConnectOutcome {
  const proceed = (reason: string): ConnectOutcome => {
    try {
      answerNotification(listener, n.id, { continue: true });
    } catch {} // the task is gone or interrupted: nothing waits for the answer
    return { answered: "continue", reason };
  };
  const targetFd = Number(n.args[0]! & 0xffffffffn);
  const len = Number(n.args[2]! & 0xffffffffn);
  let dest: Destination | null;
  try {
    dest = parseInetSockaddr(readProcessMemory(n.pid, n.args[1]!, len));
  } catch (e) {
    return proceed(`sockaddr unreadable: ${(e as Error).message}`);
  }
  // The pid and memory read above belong to the trapped task only while the notification lives.
  if (!notificationValid(listener, n.id)) return { answered: "continue", reason: "notification gone" };
  if (!dest) return proceed("not an inet sockaddr");
  const verdict = decide(dest, n.pid);
  if ("continue" in verdict) return proceed(verdict.continue);

  let theirs: number;
  try {
    theirs = copyTrappedFd(n.pid, targetFd);
  } catch (e) {
    return proceed(`pidfd_getfd: ${(e as Error).message}`);
  }
  let twin = -1;
  try {
    // Close-on-exec and O_NONBLOCK in one read of the process's fdinfo (the open file's flags are theirs too).
    const fileFlags = processFdFlags(n.pid, targetFd);
    const shape = socketShape(theirs, fileFlags);
    if (shape.type !== SOCK_STREAM || (shape.protocol !== 0 && shape.protocol !== 6)) return proceed("not TCP");
    if (shape.connected) return proceed("already connected");
    if (shape.boundPort !== 0) return proceed("bound before connect");
    const wantFamily = isIPv4("refuse" in verdict ? dest.ip : verdict.host.ip) ? AF_INET : AF_INET6;
    if (shape.family !== wantFamily && !(shape.family === AF_INET6 && wantFamily === AF_INET)) return proceed("family mismatch");
    // Refused only where a host socket would have been made: every call answered CONTINUE above meets the sandbox's own ruleset.
    if ("refuse" in verdict) {
      try {
        answerNotification(listener, n.id, { error: ERRNO.ECONNREFUSED });
      } catch {} // the task is gone or interrupted: the attempt is still reported
      return { answered: "refused", refusal: verdict.refuse };
    }
    const wouldRefuse = verdict.wouldRefuse ? { wouldRefuse: verdict.wouldRefuse } : {};
    twin = tcpTwin(theirs, shape);
    const host = verdict.host;
    // A dual-stack socket connecting to an IPv4 peer: the twin is IPv6, the address mapped.
    const addr = shape.family === AF_INET6 && wantFamily === AF_INET ? sockaddrOf(`::ffff:${host.ip}`, host.port).buf : sockaddrOf(host.ip, host.port).buf;
    const cloexec = closeOnExec(fileFlags);
    const install = (err: number): number => {
      // The twin is made non-blocking: only a blocking socket needs its mode changed.
      if (!shape.nonblocking) setNonBlocking(twin, false);
      committing();
      installProcessFd(listener, n.id, twin, targetFd, cloexec);
      answerNotification(listener, n.id, err ? { error: err } : { value: 0 });
      return err;
    };
    const started = connectSockaddr(twin, addr);
    if (started !== 0 && started !== EINPROGRESS) {
      // Refused or unreachable at once: the process sees the host's answer; its own socket stays as it was.
      answerNotification(listener, n.id, { error: started });
      return { answered: "host", errno: started, ...wouldRefuse };
    }
    if (started === 0 || shape.nonblocking) {
      const err = install(started);
      return { answered: "host", errno: err, ...wouldRefuse };
    }
    // A blocking connect: to the host's loopback the handshake has ended by the time connect() returns (the kernel ran it
    // before releasing the socket), so one poll answers it now, without a round through epoll.
    if (waitWritable(twin, 0)) {
      const err = socketError(twin);
      if (err) {
        answerNotification(listener, n.id, { error: err });
        return { answered: "host", errno: err, ...wouldRefuse };
      }
      return { answered: "host", errno: install(0), ...wouldRefuse };
    }
    const fd = twin;
    twin = -1; // the pending connect owns it now
    return {
      pending: {
        fd,
        finish: () => {
          try {
            const err = socketError(fd);
            if (err) {
              answerNotification(listener, n.id, { error: err });
              return err;
            }
            setNonBlocking(fd, false);
            committing();
            installProcessFd(listener, n.id, fd, targetFd, cloexec);
            answerNotification(listener, n.id, { value: 0 });
            return 0;
          } catch (e) {
            log.debug(`accelerate: connect of ${n.pid} not finished: ${(e as Error).message}`);
            return -1;
          } finally {
            close(fd);
          }
        },
        abandon: () => {
          try {
            answerNotification(listener, n.id, { error: 110 }); // ETIMEDOUT
          } catch {}
          close(fd);
        },
      },
      ...wouldRefuse,
    };
  } catch (e) {
    return proceed(`cannot replace the socket: ${(e as Error).message}`);
  } finally {
    close(theirs);
    if (twin >= 0) close(twin);
  }
}
