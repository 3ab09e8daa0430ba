// scripts/build.ts refuses to build a binary that would lack an entrypoint
// (issue 7): the role loading it would only fail at run time.
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { ENTRYPOINTS, buildBinary } from "../../scripts/build.ts";
import { repoRoot } from "../helpers/env.ts";

test("every listed entrypoint exists, and a missing one fails the build before Bun runs", async () => {
  for (const e of ENTRYPOINTS) expect(existsSync(`${repoRoot}/${e}`)).toBe(true);
  ENTRYPOINTS.push("src/no-such-worker.ts");
  try {
    await expect(buildBinary({ outfile: "/nonexistent-dir/burrow" })).rejects.toThrow(
      "entrypoints listed in scripts/build.ts do not exist: src/no-such-worker.ts (update ENTRYPOINTS)",
    );
  } finally {
    ENTRYPOINTS.pop();
  }
});
