// What a warm `run` and `exec` load before their first request (issue 17
// item 2, docs/decisions.md "A CLI that starts fast"): none of the Node
// modules whose loading costs a start a millisecond or more. The walk
// follows the static imports and re-exports (`import`/`export ... from`,
// not `import type`, not dynamic `import()`, which load on demand) from the
// CLI's entry through the commands.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";

const src = resolve(import.meta.dir, "../../src");

/** The specifiers a module's text loads when it is evaluated: static imports and re-exports, type-only ones left out. */
export function staticSpecifiers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^"';]*?\bfrom\s*)?"([^"]+)"\s*;?/gm)) {
    if (m[1]) continue;
    out.push(m[2]!);
  }
  return out;
}

/** Every module reachable from `entries` by static imports: src-relative paths, and the bare specifiers with who imports them. */
function closure(entries: string[]): { modules: Set<string>; bare: Map<string, string[]> } {
  const modules = new Set<string>();
  const bare = new Map<string, string[]>();
  const walk = (file: string) => {
    const rel = relative(src, file);
    if (modules.has(rel)) return;
    modules.add(rel);
    for (const spec of staticSpecifiers(readFileSync(file, "utf8"))) {
      if (spec.startsWith(".")) walk(resolve(dirname(file), spec));
      else bare.set(spec, [...(bare.get(spec) ?? []), rel]);
    }
  };
  for (const e of entries) walk(resolve(src, e));
  return { modules, bare };
}

// Measured in a compiled program (bun 1.4.5): node:fs 1.4 ms, node:util ~2,
// node:crypto ~5, node:os 0.6, node:path 0.6; node:tty and node:net ~1.
const SLOW = ["fs", "os", "path", "util", "crypto", "tty", "net", "child_process", "stream", "citty"];

/** What a `run` or `exec` loads before its request goes out. */
const BEFORE_REQUEST = ["main.ts", "workers.ts", "cli/main.ts", "cli/run.ts", "cli/exec.ts"];
/** What they load while the daemon answers (dynamic imports every foreground run makes): the replies' schemas, the enter step. */
const DURING_REQUEST = ["replies.ts", "cli/_foreground.ts"];

describe("the modules on the path of run and exec", () => {
  const { modules, bare } = closure([...BEFORE_REQUEST, ...DURING_REQUEST]);

  test("load the replies' schemas and the enter step only after the request went out (src/cli/_load-foreground.ts)", () => {
    const before = closure(BEFORE_REQUEST).modules;
    for (const m of [...DURING_REQUEST, "client/enter.ts", "sandbox/enter-spawn.ts", "sys/seccomp.ts", "sys/memfd.ts"]) expect(before).not.toContain(m);
    // The enter target's schemas (~0.6 ms of valibot) are the create reply's: built while the daemon answers.
    expect(before).not.toContain("enter-messages.ts");
    expect(closure(DURING_REQUEST).modules).toContain("enter-messages.ts");
    // Still a complete walk: the request's own path is there.
    for (const m of ["client/client.ts", "client/unix-http.ts", "client/trust.ts", "paths.ts"]) expect(before).toContain(m);
  });

  test("import none of the slow Node modules (src/lazy-node.ts loads node:fs and node:os on first use)", () => {
    const found = [...bare].filter(([spec]) => SLOW.includes(spec.replace(/^node:/, ""))).map(([spec, by]) => `${spec} <- ${by.join(", ")}`);
    expect(found).toEqual([]);
  });

  test("build none of the daemon's own message schemas (the namespace Worker's, the CNI runner's, the requests')", () => {
    // src/protocol.ts's request schemas pull in the egress policy's; replies come from src/replies.ts.
    for (const m of ["namespaces/messages.ts", "net/cni/messages.ts", "protocol.ts", "egress/policy.ts"]) expect(modules).not.toContain(m);
  });

  test("load no daemon-starting code: a running daemon is the common case (src/client/start-daemon.ts is loaded when none answers)", () => {
    for (const m of ["client/start-daemon.ts", "userns/session.ts", "userns/podman-join.ts", "client/root-supervisor.ts"]) expect(modules).not.toContain(m);
  });

  test("load no consola: src/log.ts requires it by path on a first message, a literal require would bundle its 44 KB into every chunk that logs", () => {
    const literal = [...modules].filter((m) => /\brequire\(\s*["']consola/.test(readFileSync(resolve(src, m), "utf8")));
    expect(literal).toEqual([]);
    expect(modules).toContain("log.ts");
  });

  test("the walk sees the whole path: the client, the trust checks, the enter step", () => {
    for (const m of ["client/client.ts", "client/trust.ts", "private-file.ts", "sandbox/enter-spawn.ts", "sys/pty.ts", "lazy-node.ts"])
      expect(modules).toContain(m);
    // Re-exports count: src/client/host.ts re-exports src/sys/pty.ts.
    expect(staticSpecifiers('export { isTerminal } from "../sys/pty.ts";')).toEqual(["../sys/pty.ts"]);
  });

  test("type-only imports and dynamic imports are not loads", () => {
    const text = [
      'import type { Stats } from "node:fs";',
      'const m = await import("node:os");',
      'import {\n  a,\n  b,\n} from "node:path";',
      'import "./side-effect.ts";',
    ].join("\n");
    expect(staticSpecifiers(text)).toEqual(["node:path", "./side-effect.ts"]);
  });
});
