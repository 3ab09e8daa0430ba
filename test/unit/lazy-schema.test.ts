// lazySchema (src/messages.ts): a schema that a CLI start loads but need
// not parse with is built on its first parse, once, and validates as the
// schema itself would.
import { expect, test } from "bun:test";
import * as v from "valibot";
import { HolderFile, PathsMessage, lazySchema, parseMessage } from "../../src/messages.ts";

test("built on the first parse only, once, and as strict as the schema it builds", () => {
  let built = 0;
  const Pid = lazySchema(() => {
    built++;
    return v.object({ pid: v.pipe(v.number(), v.integer(), v.minValue(1)) });
  });
  expect(built).toBe(0);
  expect(v.safeParse(Pid, { pid: 7 }).output).toEqual({ pid: 7 });
  expect(built).toBe(1);
  for (const bad of [{ pid: 0 }, { pid: 1.5 }, { pid: "7" }, {}, null]) expect(v.safeParse(Pid, bad).success).toBe(false);
  expect(built).toBe(1);
});

test("the records' schemas refuse what they refused before they were lazy", () => {
  expect(() => parseMessage(HolderFile, { pid: 0, startTime: "1", userns: "u", mntns: "m", map: "subid" }, "holder.json")).toThrow(
    "holder.json is malformed: pid: Invalid value: Expected >=1 but received 0",
  );
  expect(() => parseMessage(HolderFile, { pid: 5, startTime: "1", userns: "u", mntns: "m", map: "many" }, "holder.json")).toThrow(/map: /);
  expect(() => parseMessage(PathsMessage, '{"rootless":true}', "BURROW_PATHS")).toThrow(/BURROW_PATHS is malformed: uid: /);
});
