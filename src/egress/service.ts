// STAND-IN for E2's resolver service (branch eg-resolver): the lead replaces
// this whole file with E2's src/egress/service.ts at merge. Only the
// interface below is the plan's (/work/wt/EGRESS-PLAN.md "Interfaces"); the
// daemon's wiring (src/daemon/egress.ts) uses nothing else. This stand-in
// serves nothing: attach records the sandbox and keeps its fds open (so the
// resolver's 127.0.0.53:53 stays bound and nothing else can take it), detach
// closes them, no name resolves and no refusal is reported.
import { close } from "../sys/ns.ts";
import type { EgressPolicy, PolicyContext } from "./policy.ts";
import type { RefusalEvent } from "./refusals.ts";

export interface EgressAttach {
  id: string;
  name: string;
  policy: EgressPolicy; // the spec form (policy.ts)
  context: PolicyContext; // for compilePolicy, resolved at this start
  upstreams: string[]; // resolver IPs (v4 or v6), port 53: --dns servers, else the host's resolv.conf nameservers
  fds: { dnsUdp: number; dnsTcp: number; nft: number; nflog: number }; // the service owns them from here (closes on detach)
}
export interface EgressService {
  attach(a: EgressAttach): Promise<void>; // resolves once the worker serves them
  detach(id: string): void; // stops serving, closes the fds
  learnedCount(id: string): number; // inspect's NetworkSettings.EgressLearned
  close(): Promise<void>;
}

export function createEgressService(_deps: {
  /** A refusal event to record, already folded by RefusalEvents (src/egress/refusals.ts) per sandbox. */
  onRefusal(id: string, event: RefusalEvent): void;
  /** An address learned for allow rule `allowIndex` until `expiresAt` (ms epoch): --accelerate's supervisor needs it. */
  onLearned?(id: string, allowIndex: number, address: string, expiresAt: number): void;
}): EgressService {
  const attached = new Map<string, EgressAttach["fds"]>();
  const detach = (id: string) => {
    const fds = attached.get(id);
    if (!fds) return;
    attached.delete(id);
    for (const fd of Object.values(fds)) close(fd);
  };
  return {
    async attach(a) {
      detach(a.id); // a second attach of one sandbox replaces the first
      attached.set(a.id, a.fds);
    },
    detach,
    learnedCount: () => 0,
    async close() {
      for (const id of [...attached.keys()]) detach(id);
    },
  };
}
