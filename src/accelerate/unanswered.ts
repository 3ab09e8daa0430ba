// The calls the accelerator Worker received and has not answered yet, in
// memory the main thread shares (docs/accelerate.md "When the supervisor
// Worker dies"). The kernel gives a notification to a reader once: one the
// dead Worker received stays pending, and the trapped task waits, until
// someone answers its id on a copy of the listener. The main thread reads
// this table after the Worker died and has the next Worker answer each id
// with what the table says is safe:
// - CONTINUE while the dead Worker was still deciding (nothing was done for
//   the call: it runs in the sandbox, as without --accelerate), and for a
//   bind parked for a lent socket or a connect waiting for its host
//   handshake (the process's own socket is untouched until the install);
// - an error (`COMMITTED_ERRNO`) once it had begun to install a host socket
//   over the process's fd: CONTINUE would then run the process's connect on
//   a host socket, to a sockaddr the process may have rewritten since.
// The Worker also marks which sandbox's call it is handling, so the main
// thread knows whom a crash came from (a sandbox that crashes it again and
// again is served without acceleration).

/** How many unanswered calls the table holds; one beyond that is not recorded (after a crash it waits until the process is interrupted). */
export const UNANSWERED_SLOTS = 4096;
/** The answer a call whose host socket was being installed gets after a crash (the process sees a failed connect or bind and may retry). */
export const COMMITTED_ERRNO = 110; // ETIMEDOUT
/** What a slot's answer means: CONTINUE. */
export const ANSWER_CONTINUE = -1;

/** One call the dead Worker left: its notification id, the sandbox key, and CONTINUE (-1) or a positive errno. */
export interface UnansweredCall {
  id: bigint;
  key: number;
  answer: number;
}

/** Bytes: the ids, then per slot [answer, key], then the key being handled now. */
export function unansweredBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(UNANSWERED_SLOTS * 8 + UNANSWERED_SLOTS * 8 + 4);
}

/** The Worker's side: a slot per received call, freed when the call is answered. */
export class UnansweredCalls {
  private readonly ids: BigInt64Array;
  private readonly meta: Int32Array;
  private readonly current: Int32Array;
  private readonly free: number[] = [];

  constructor(buffer: SharedArrayBuffer) {
    this.ids = new BigInt64Array(buffer, 0, UNANSWERED_SLOTS);
    this.meta = new Int32Array(buffer, UNANSWERED_SLOTS * 8, UNANSWERED_SLOTS * 2);
    this.current = new Int32Array(buffer, UNANSWERED_SLOTS * 16, 1);
    for (let i = UNANSWERED_SLOTS - 1; i >= 0; i--) this.free.push(i);
  }

  /** Records call `id` of sandbox `key` as CONTINUE-safe; the slot, or -1 when the table is full. */
  received(id: bigint, key: number): number {
    const slot = this.free.pop();
    if (slot === undefined) return -1;
    this.ids[slot] = id;
    this.meta[slot * 2 + 1] = key;
    this.meta[slot * 2] = ANSWER_CONTINUE;
    return slot;
  }

  /** The host socket is about to be installed: from here a crash must not let the call run as the process made it. */
  committing(slot: number): void {
    if (slot >= 0) this.meta[slot * 2] = COMMITTED_ERRNO;
  }

  answered(slot: number): void {
    if (slot < 0) return;
    this.meta[slot * 2] = 0;
    this.free.push(slot);
  }

  /** Sandbox `key`'s call is being handled now (0: none). */
  handling(key: number): void {
    this.current[0] = key;
  }
}

/** The main thread's side, after the Worker died: what it left unanswered, and whose call it was handling. */
export function readUnanswered(buffer: SharedArrayBuffer): { calls: UnansweredCall[]; handling: number } {
  const ids = new BigInt64Array(buffer, 0, UNANSWERED_SLOTS);
  const meta = new Int32Array(buffer, UNANSWERED_SLOTS * 8, UNANSWERED_SLOTS * 2);
  const calls: UnansweredCall[] = [];
  for (let i = 0; i < UNANSWERED_SLOTS; i++) {
    const answer = meta[i * 2]!;
    if (answer !== 0) calls.push({ id: BigInt.asUintN(64, ids[i]!), key: meta[i * 2 + 1]!, answer });
  }
  return { calls, handling: new Int32Array(buffer, UNANSWERED_SLOTS * 16, 1)[0]! };
}
