// The table of calls the accelerator Worker received and has not answered
// (src/accelerate/unanswered.ts), as the main thread reads it after a crash.
import { expect, test } from "bun:test";
import { ANSWER_CONTINUE, COMMITTED_ERRNO, readUnanswered, UNANSWERED_SLOTS, UnansweredCalls, unansweredBuffer } from "../../src/accelerate/unanswered.ts";

test("received calls are CONTINUE until their host socket is being installed; answered ones leave the table", () => {
  const buffer = unansweredBuffer();
  const calls = new UnansweredCalls(buffer);
  const big = 0xfedcba9876543210n; // notification ids are u64: above 2^63 too
  const a = calls.received(big, 7);
  const b = calls.received(5n, 8);
  const c = calls.received(6n, 8);
  calls.committing(b);
  calls.answered(c);
  calls.handling(8);
  const left = readUnanswered(buffer);
  expect(left.handling).toBe(8);
  expect(left.calls.sort((x, y) => x.key - y.key)).toEqual([
    { id: big, key: 7, answer: ANSWER_CONTINUE },
    { id: 5n, key: 8, answer: COMMITTED_ERRNO },
  ]);
  calls.answered(a);
  calls.answered(b);
  calls.handling(0);
  expect(readUnanswered(buffer)).toEqual({ calls: [], handling: 0 });
});

test("a full table records no more (slot -1), and a freed slot is used again", () => {
  const calls = new UnansweredCalls(unansweredBuffer());
  const slots = Array.from({ length: UNANSWERED_SLOTS }, (_, i) => calls.received(BigInt(i + 1), 1));
  expect(new Set(slots).size).toBe(UNANSWERED_SLOTS);
  expect(calls.received(99999n, 1)).toBe(-1);
  calls.committing(-1); // no-ops for an unrecorded call
  calls.answered(-1);
  calls.answered(slots[10]!);
  expect(calls.received(99999n, 1)).toBe(slots[10]!);
});
