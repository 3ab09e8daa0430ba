// One trapped bind() (docs/accelerate.md "Inbound"): a TCP server in an
// accelerated sandbox binding a port published with -p gets the builtin
// forwarder's host listening socket instead, so its clients need no
// forwarder. Here: the first half (read the sockaddr once, check the
// notification, decide, look at the socket) and the second (install the
// host socket the main thread lent over the process's fd and answer 0).
// Anything unexpected is answered CONTINUE: the bind then runs in the
// sandbox, as without --accelerate.
import { AF_INET, AF_INET6, SOCK_STREAM } from "../sys/net.ts";
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
import { setNonBlocking, socketShape } from "../sys/socket-twin.ts";
import { type Destination, parseInetSockaddr } from "./connect.ts";
import type { BindVerdict } from "./scope.ts";

/** A bind waiting for the main thread's answer: what it needs to finish. */
export interface ParkedBind {
  listener: number;
  id: bigint;
  pid: number;
  targetFd: number;
  cloexec: boolean;
  nonblocking: boolean;
  port: number;
  family: 4 | 6;
}

export type BindOutcome = { answered: "continue"; reason: string } | { park: ParkedBind };

function proceed(listener: number, id: bigint, reason: string): BindOutcome {
  try {
    answerNotification(listener, id, { continue: true });
  } catch {} // the task is gone or interrupted
  return { answered: "continue", reason };
}

/** Reads and judges one bind notification; `decide` sees only burrow's copy of the address. */
export function trappedBind(listener: number, n: Notification, decide: (dest: Destination, family: 4 | 6, pid: number) => BindVerdict): BindOutcome {
  const targetFd = Number(n.args[0]! & 0xffffffffn);
  const len = Number(n.args[2]! & 0xffffffffn);
  let raw: Uint8Array;
  try {
    raw = readProcessMemory(n.pid, n.args[1]!, len);
  } catch (e) {
    return proceed(listener, n.id, `sockaddr unreadable: ${(e as Error).message}`);
  }
  if (!notificationValid(listener, n.id)) return { answered: "continue", reason: "notification gone" };
  const dest = parseInetSockaddr(raw);
  if (!dest) return proceed(listener, n.id, "not an inet sockaddr");
  // The sockaddr's own family (an IPv4-mapped address in a sockaddr_in6 is an IPv6 bind).
  const family = (raw[0]! | (raw[1]! << 8)) === AF_INET ? 4 : 6;
  if (family === 6 && dest.ip.includes(".")) return proceed(listener, n.id, "an IPv4-mapped address");
  const verdict = decide(dest, family, n.pid);
  if ("continue" in verdict) return proceed(listener, n.id, verdict.continue);
  let theirs: number;
  try {
    theirs = copyTrappedFd(n.pid, targetFd);
  } catch (e) {
    return proceed(listener, n.id, `pidfd_getfd: ${(e as Error).message}`);
  }
  try {
    // Close-on-exec and O_NONBLOCK in one read of the process's fdinfo, as for a connect.
    const fileFlags = processFdFlags(n.pid, targetFd);
    const shape = socketShape(theirs, fileFlags);
    if (shape.type !== SOCK_STREAM || (shape.protocol !== 0 && shape.protocol !== 6)) return proceed(listener, n.id, "not TCP");
    if (shape.family !== (family === 4 ? AF_INET : AF_INET6)) return proceed(listener, n.id, "family mismatch");
    if (shape.connected || shape.boundPort !== 0) return proceed(listener, n.id, "bound or connected already");
    return {
      park: {
        listener,
        id: n.id,
        pid: n.pid,
        targetFd,
        cloexec: closeOnExec(fileFlags),
        nonblocking: shape.nonblocking,
        port: verdict.port,
        family,
      },
    };
  } catch (e) {
    return proceed(listener, n.id, `cannot look at the socket: ${(e as Error).message}`);
  } finally {
    close(theirs);
  }
}

/**
 * Finishes a parked bind with the lent host socket `fd` (ours to close), or
 * when `fd` is -1 with `errno` (the port is lent to another server already)
 * or CONTINUE. True when the host socket is the process's
 * now.
 */
export function finishBind(p: ParkedBind, fd: number, errno?: number, committing: () => void = () => {}): boolean {
  if (fd < 0) {
    if (errno) {
      try {
        answerNotification(p.listener, p.id, { error: errno });
      } catch {}
    } else proceed(p.listener, p.id, "no published port to lend");
    return false;
  }
  try {
    // The open file is shared with the forwarder's copy: the server gets the blocking mode it asked for; the forwarder sets it back when it takes the socket back.
    setNonBlocking(fd, p.nonblocking);
    committing();
    installProcessFd(p.listener, p.id, fd, p.targetFd, p.cloexec);
  } catch {
    proceed(p.listener, p.id, "the socket could not be installed");
    return false;
  } finally {
    close(fd);
  }
  try {
    answerNotification(p.listener, p.id, { value: 0 });
  } catch {} // interrupted after the install: the process has the socket all the same
  return true;
}
