// STUB for branch eg-resolver only: engineer E1's src/egress/nft-netlink.ts
// replaces this file at merge (the lead keeps E1's). It holds the one
// signature the resolver worker (src/egress/worker.ts) calls, so the worker
// compiles and its tests inject a learner of their own.

/** Adds (or refreshes the timeout of) learned addresses, one batch; set names from nft.ts learnedSet(). */
export function learnAddresses(_fd: number, _entries: readonly { set: string; address: string; seconds: number }[]): void {
  throw new Error("learnAddresses: nftables over netlink is not built in this branch (E1's src/egress/nft-netlink.ts replaces this stub)");
}
