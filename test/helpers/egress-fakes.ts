// Stand-ins the egress Worker (src/egress/worker.ts) loads in tests instead
// of nftables and NFLOG (EgressServiceOptions learnerModule / nflogModule).
// They run on the worker's thread, so they talk to the test through the fds
// the test gave as the sandbox's `nft` and `nflog`: pipes.
//
//   learnAddresses: one JSON line per call, the entries, written to the `nft`
//     fd (a pipe's write end) before it returns: the test reads the other end
//     when the answer arrives, and so sees whether learning came first. It
//     throws for UNLEARNABLE, as a refused netlink batch would.
//   readNflog: the `nflog` fd is a pipe's read end; each JSON line the test
//     writes is one NflogPacket. A line {"exit": true} ends the worker's
//     thread, {"poison": true} throws in its loop (the service's restarts).
import type { NflogPacket } from "../../src/sys/nflog.ts";
import { readNB, writeAll } from "../../src/sys/sockets.ts";

/** An address the learner refuses, as a netlink error would: the resolver must not answer with it. */
export const UNLEARNABLE = "198.51.100.99";

export function learnAddresses(fd: number, entries: readonly { set: string; address: string; seconds: number }[]): void {
  if (entries.some((e) => e.address === UNLEARNABLE)) throw new Error(`the set refused ${UNLEARNABLE}`);
  writeAll(fd, new TextEncoder().encode(`${JSON.stringify(entries)}\n`));
}

const partial = new Map<number, string>();
const buf = new Uint8Array(65536);

export function readNflog(fd: number): NflogPacket[] {
  let text = partial.get(fd) ?? "";
  for (;;) {
    const n = readNB(fd, buf);
    if (n <= 0) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  const lines = text.split("\n");
  partial.set(fd, lines.pop() ?? "");
  const packets: NflogPacket[] = [];
  for (const line of lines) {
    let p = JSON.parse(line);
    if (p.exit) process.exit(7);
    // A packet that blows up whoever reads it: an exception in the worker's loop.
    if (p.poison)
      p = {
        get prefix(): string {
          throw new Error("poisoned packet");
        },
      };
    packets.push(p);
  }
  return packets;
}
