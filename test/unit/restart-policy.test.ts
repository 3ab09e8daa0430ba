// Restart policy parsing (podman's ParseRestartPolicy and create
// validation), the restart decision (podman's shouldRestart) and the
// back-off schedule (Docker's restart manager: podman has none).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { BurrowError } from "../../src/errors.ts";
import {
  BACKOFF,
  checkRestartRequest,
  checkRunFlags,
  formatRestartPolicy,
  nextBackoff,
  parseRestartPolicy,
  restartStateOf,
  shouldRestart,
} from "../../src/sandbox/restart-policy.ts";
import { refusal } from "../helpers/rejection.ts";

describe("parseRestartPolicy", () => {
  test.each([
    [undefined, "no", 0],
    ["", "no", 0],
    ["no", "no", 0],
    ["never", "no", 0],
    ["NEVER", "no", 0],
    ["always", "always", 0],
    ["Always", "always", 0],
    ["unless-stopped", "unless-stopped", 0],
    ["on-failure", "on-failure", 0],
    ["on-failure:0", "on-failure", 0],
    ["on-failure:3", "on-failure", 3],
    ["ON-FAILURE:12", "on-failure", 12],
  ] as const)("%p -> %s, %d retries", (raw, name, max) => {
    expect(parseRestartPolicy(raw)).toEqual({ name, maxRetries: max });
  });

  test.each([
    ["sometimes", 'invalid restart policy "sometimes": may only be "no", "on-failure[:N]", "always" or "unless-stopped"'],
    ["always:3", 'invalid restart policy "always:3": retries can only be specified with the on-failure restart policy'],
    ["no:1", "retries can only be specified with the on-failure"],
    ["on-failure:x", "the retry count must be a whole number of 0 or more"],
    ["on-failure:-1", "the retry count must be a whole number of 0 or more"],
    ["on-failure:", "the retry count must be a whole number"],
    ["on-failure:1:2", "may specify retries at most once"],
    ["on-failure:99999999999999999999", "too large"],
  ])("%p is refused", (raw, msg) => {
    expect(refusal(() => parseRestartPolicy(raw)).message).toContain(msg);
  });

  test("formatRestartPolicy prints the flag back", () => {
    expect(formatRestartPolicy(parseRestartPolicy("on-failure:4"))).toBe("on-failure:4");
    expect(formatRestartPolicy(parseRestartPolicy("on-failure"))).toBe("on-failure");
    expect(formatRestartPolicy(parseRestartPolicy("never"))).toBe("no");
  });
});

describe("run flag combinations", () => {
  test("--rm conflicts with always and unless-stopped (podman's refusal), not with no or on-failure", () => {
    for (const p of ["always", "unless-stopped"]) {
      const e = refusal(() => checkRestartRequest({ restart: p, rm: true, detach: true }));
      expect(e.message).toContain("the --rm option conflicts with --restart");
      expect(e.message).toContain(p);
    }
    for (const p of [undefined, "no", "on-failure", "on-failure:2"])
      expect(checkRestartRequest({ restart: p, rm: true, detach: true }).name).toBe(parseRestartPolicy(p).name);
  });

  test("a restarting policy needs -d; no policy does not", () => {
    expect(refusal(() => checkRunFlags(parseRestartPolicy("always"), { rm: false, detach: false })).message).toContain("--restart always needs -d");
    expect(refusal(() => checkRunFlags(parseRestartPolicy("on-failure:2"), { rm: false, detach: false })).message).toContain("--restart on-failure:2 needs -d");
    expect(() => checkRunFlags(parseRestartPolicy("no"), { rm: false, detach: false })).not.toThrow();
  });
});

describe("shouldRestart", () => {
  const facts = (exitCode: number | null, restartCount = 0, stoppedByUser = false) => ({ exitCode, restartCount, stoppedByUser });

  test("no never restarts", () => {
    expect(shouldRestart(parseRestartPolicy("no"), facts(1))).toBe(false);
  });

  test("always and unless-stopped restart on any status, but never after a user stop", () => {
    for (const p of ["always", "unless-stopped"]) {
      expect(shouldRestart(parseRestartPolicy(p), facts(0))).toBe(true);
      expect(shouldRestart(parseRestartPolicy(p), facts(137, 1000))).toBe(true);
      expect(shouldRestart(parseRestartPolicy(p), facts(null))).toBe(true);
      expect(shouldRestart(parseRestartPolicy(p), facts(1, 0, true))).toBe(false);
    }
  });

  test("on-failure: only non-zero (or unknown) statuses, within the retry limit", () => {
    const two = parseRestartPolicy("on-failure:2");
    expect(shouldRestart(two, facts(0))).toBe(false);
    expect(shouldRestart(two, facts(137, 0))).toBe(true);
    expect(shouldRestart(two, facts(1, 1))).toBe(true);
    expect(shouldRestart(two, facts(1, 2))).toBe(false);
    expect(shouldRestart(two, facts(null, 1))).toBe(true);
    expect(shouldRestart(two, facts(1, 0, true))).toBe(false);
    const unlimited = parseRestartPolicy("on-failure");
    expect(shouldRestart(unlimited, facts(1, 10_000))).toBe(true);
    expect(shouldRestart(parseRestartPolicy("on-failure:0"), facts(1, 10_000))).toBe(true);
  });
});

describe("back-off", () => {
  test("doubles from 100 ms and is capped at one minute", () => {
    const delays: number[] = [];
    let d = 0;
    for (let i = 0; i < 14; i++) delays.push((d = nextBackoff(d, 5)));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000, 60000, 60000]);
    expect(BACKOFF.maxMs).toBe(60_000);
  });

  test("starts over after a run of 10 s, not after a shorter one", () => {
    expect(nextBackoff(51200, 9_999)).toBe(60000);
    expect(nextBackoff(51200, 10_000)).toBe(100);
    expect(nextBackoff(60000, 3_600_000)).toBe(100);
    expect(nextBackoff(0, 0)).toBe(100);
  });
});

describe("parseRestartPolicy on any text (fast-check, as test/unit/properties.test.ts)", () => {
  const numRuns = Number(process.env.BURROW_PROPERTY_RUNS || 300);
  const valid = fc.oneof(
    fc.constantFrom("", "no", "never", "NO", "always", "Always", "unless-stopped", "on-failure"),
    fc.nat().map((n) => `on-failure:${n}`),
  );
  const text = fc.oneof(valid, fc.string({ unit: fc.constantFrom(..."noaltwysuefir-:0123456789NOA"), maxLength: 30 }), fc.string({ maxLength: 200 }));
  test("a policy or a one-line bad-input error that quotes at most 60 characters of the value", () => {
    fc.assert(
      fc.property(text, (s) => {
        try {
          parseRestartPolicy(s);
        } catch (e) {
          expect(e).toBeInstanceOf(BurrowError);
          expect((e as BurrowError).kind).toBe("bad-input");
          expect((e as BurrowError).message).not.toMatch(/[\r\n]/);
          expect((e as BurrowError).message.length).toBeLessThan(200);
        }
      }),
      { numRuns },
    );
  });
  test("what parses prints back as a flag that parses to the same policy", () => {
    fc.assert(
      fc.property(text, (s) => {
        let p: ReturnType<typeof parseRestartPolicy>;
        try {
          p = parseRestartPolicy(s);
        } catch {
          return;
        }
        expect(parseRestartPolicy(formatRestartPolicy(p))).toEqual(p);
      }),
      { numRuns },
    );
  });
});

describe("the supervision state read back from a row", () => {
  test("a state of this shape is kept; anything else starts over at 0", () => {
    expect(restartStateOf({ count: 3, pending: true, delayMs: 400 })).toEqual({ count: 3, pending: true, delayMs: 400 });
    expect(restartStateOf({ count: 2 })).toEqual({ count: 2 });
    for (const bad of [undefined, null, "3", { count: -1 }, { count: 1.5 }, { count: "2" }, { count: 1, pending: "yes" }, { count: 1, delayMs: 1e12 }])
      expect(restartStateOf(bad)).toEqual({ count: 0 });
  });
});
