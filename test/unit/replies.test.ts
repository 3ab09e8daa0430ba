// The reply schemas the CLI checks (src/replies.ts), built on first use.
import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { Ops, type Op } from "../../src/protocol.ts";
import { replyOf } from "../../src/replies.ts";

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
    expect(v.is(replyOf("create"), { id: "a", name: "b", enter: { ...enter, caps: ["CAP_NONE"] } })).toBe(false);
    expect(v.is(replyOf("create"), { id: 1, name: "b" })).toBe(false);
    expect(v.is(replyOf("exited"), {})).toBe(true);
    expect(v.is(replyOf("rm"), { id: "a", name: "b", removed: [{ id: "c", name: "d" }] })).toBe(true);
    expect(v.is(replyOf("rm"), { id: "a", name: "b", removed: [{ id: "c" }] })).toBe(false);
    expect(v.is(replyOf("list"), [{ Id: "a" }])).toBe(false);
  });
});
