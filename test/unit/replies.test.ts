// The reply schemas the CLI checks (src/replies.ts), built on first use.
import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { Ops, type Op } from "../../src/protocol.ts";
import { enterTargetOf, replyOf } from "../../src/replies.ts";
import { BurrowError } from "../../src/errors.ts";

describe("replyOf", () => {
  const ops = Object.keys(Ops) as Op[];

  test("has a schema for every op the daemon serves, built once", () => {
    expect(ops.length).toBeGreaterThan(20);
    for (const op of ops) {
      const schema = replyOf(op);
      expect(typeof schema["~run"]).toBe("function");
      expect(replyOf(op)).toBe(schema);
    }
  });

  test("checks what it is asked to: a create's reply with and without its enter target, a refusal of a malformed one", () => {
    const enter = { session: {}, net: "/run/pins/x/net", caps: ["CAP_CHOWN"], cwd: "/" };
    expect(v.is(replyOf("create"), { id: "a", name: "b", enter })).toBe(true);
    expect(v.is(replyOf("create"), { id: "a", name: "b" })).toBe(true);
    // The target's contents are checked where the CLI spawns with it (enterTargetOf), its shape on arrival.
    expect(v.is(replyOf("create"), { id: "a", name: "b", enter: "/run/pins/x" })).toBe(false);
    expect(v.is(replyOf("create"), { id: 1, name: "b" })).toBe(false);
    expect(v.is(replyOf("enter"), { id: "a", name: "b", enter: { ...enter, caps: ["CAP_NONE"] } })).toBe(false);
    expect(v.is(replyOf("exited"), {})).toBe(true);
    expect(v.is(replyOf("rm"), { id: "a", name: "b", removed: [{ id: "c", name: "d" }] })).toBe(true);
    expect(v.is(replyOf("rm"), { id: "a", name: "b", removed: [{ id: "c" }] })).toBe(false);
    expect(v.is(replyOf("list"), [{ Id: "a" }])).toBe(false);
  });

  test("enterTargetOf: a create's target as the enter step takes it, or one line naming what is wrong", () => {
    const enter = { session: { user: "/proc/1/ns/user" }, net: "/run/pins/x/net", caps: ["CAP_CHOWN"], cwd: "/", extra: 1 };
    expect(enterTargetOf(enter)).toMatchObject({ session: { user: "/proc/1/ns/user" }, net: "/run/pins/x/net", caps: ["CAP_CHOWN"], cwd: "/" });
    let err: unknown;
    try {
      enterTargetOf({ ...enter, caps: ["CAP_NONE"] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BurrowError);
    expect((err as BurrowError).kind).toBe("protocol");
    expect((err as Error).message).toContain("the daemon's reply to create is not what this burrow expects (caps.0: Invalid capability");
    expect(() => enterTargetOf(undefined)).toThrow("the daemon's reply to create is not what this burrow expects");
  });
});
