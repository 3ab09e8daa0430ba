// The daemon's copy of a sandbox's learned addresses (src/egress/learned.ts)
// shrinks as it grows: nobody has to ask for its count (inspect) for the
// expired ones to go.
import { describe, expect, test } from "bun:test";
import { LEARNED_PRUNE_MS, LearnedAddresses } from "../../src/egress/learned.ts";
import { parseIp } from "../../src/net/cni/ip.ts";

describe("learned addresses over time", () => {
  test("add forgets what expired, at most once per LEARNED_PRUNE_MS", () => {
    const l = new LearnedAddresses();
    l.add("198.51.100.1", 0, 60, 0); // until 60 s
    l.add("198.51.100.2", 0, 600, 1_000);
    expect(l.size).toBe(2);
    // Expired, but the last prune (at the first add) was less than LEARNED_PRUNE_MS ago: kept (and not counted as learned).
    l.add("198.51.100.3", 0, 600, LEARNED_PRUNE_MS - 1);
    expect(l.size).toBe(3);
    expect(l.rulesFor(parseIp("198.51.100.1")!, LEARNED_PRUNE_MS - 1)).toEqual([0]);
    expect(l.rulesFor(parseIp("198.51.100.1")!, 60_000)).toEqual([]);
    // Due: the expired address goes, the live ones and the new one stay.
    l.add("198.51.100.4", 0, 600, LEARNED_PRUNE_MS);
    expect(l.size).toBe(3);
    expect(l.rulesFor(parseIp("198.51.100.2")!, LEARNED_PRUNE_MS)).toEqual([0]);
  });
});
