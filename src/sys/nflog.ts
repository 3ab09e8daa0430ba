// STUB for branch eg-resolver only: engineer E1's src/sys/nflog.ts replaces
// this file at merge (the lead keeps E1's). It holds the signatures the
// resolver worker (src/egress/worker.ts) uses, so the worker compiles and its
// tests inject a reader of their own.

export interface NflogPacket {
  prefix: string;
  family: 4 | 6;
  destination: string;
  protocol: "tcp" | "udp" | "icmp" | "other";
  port?: number;
}

/** Reads what is queued on a non-blocking nflog socket (never blocks); [] when nothing. */
export function readNflog(_fd: number): NflogPacket[] {
  throw new Error("readNflog: NFLOG is not built in this branch (E1's src/sys/nflog.ts replaces this stub)");
}
