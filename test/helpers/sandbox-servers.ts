// Starts test/helpers/netns-servers.ts (echo, sink, source, UDP, HTTP) inside
// a sandbox with `burrow run -i`, and resolves once they all listen. They
// end when their stdin, a pipe from the test, closes: stop() closes it and
// expects a clean exit.
import { expect } from "bun:test";
import type { BurrowContext } from "./context.ts";
import { repoRoot } from "./env.ts";

/** The bun that runs the test helpers inside sandboxes. */
export const BUN = `${repoRoot}/node_modules/bun/bin/bun.exe`;
const SERVERS = `${repoRoot}/test/helpers/netns-servers.ts`;

/** `burrow run -i --rm --name NAME RUNARGS -- bun netns-servers.ts BIND BASE`. */
export async function startSandboxServers(t: BurrowContext, name: string, runArgs: string[], bind: string, base: number) {
  const p = t.spawnBurrow(["run", "-i", "--rm", "--name", name, ...runArgs, "--", BUN, SERVERS, bind, String(base)], { stdin: "pipe" });
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  let out = "";
  while (!out.includes("ready")) {
    const c = await reader.read();
    if (c.done) throw new Error(`servers did not start: ${out}${await new Response(p.stderr as ReadableStream).text()}`);
    out += Buffer.from(c.value).toString();
  }
  reader.releaseLock();
  return {
    async stop() {
      (p.stdin as import("bun").FileSink).end();
      expect(await p.exited).toBe(0);
    },
  };
}
