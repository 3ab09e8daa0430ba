// rewriteEtcFile (src/daemon/ownership.ts) writes a running sandbox's /etc
// file through /proc/PID/root only when PID is in the sandbox's mount
// namespace, and never into the daemon's own file. A recorded pid that had
// not joined its sandbox yet (the enter child of `run -d`) once made a
// rootful `network connect` rewrite the host's /etc/resolv.conf.
// Real mount namespaces (unshare -m, as root); the files are temporary ones.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { rewriteEtcFile } from "../../src/daemon/ownership.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { until } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping /etc rewrite tests: ${why}`);

describe.skipIf(!!why)("rewriting a running sandbox's /etc file", () => {
  let dir = "";
  let child: ReturnType<typeof Bun.spawn> | null = null;
  afterEach(() => {
    child?.kill("SIGKILL");
    child = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function setup() {
    dir = mkdtempSync("/tmp/burrow-etc-");
    const inside = `${dir}/resolv.conf`; // "the host's" file at the sandbox's path
    const copy = `${dir}/copy`;
    const original = `${dir}/original`; // what a process in the other namespace sees at `inside`
    writeFileSync(inside, "host\n");
    writeFileSync(copy, "copy\n");
    writeFileSync(original, "original\n");
    return { inside, copy, original };
  }

  async function otherNamespace(inside: string, original: string) {
    child = Bun.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c", `mount --bind ${original} ${inside} && exec sleep 60`]);
    const pid = child.pid;
    // Its mount namespace once the bind is in place (sleep is exec'd after it).
    await until(() => readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sleep");
    return { pid, mnt: statSync(`/proc/${pid}/ns/mnt`).ino };
  }

  test("a pid in the sandbox's mount namespace: the file it sees is rewritten, the host's is not", async () => {
    const f = setup();
    const other = await otherNamespace(f.inside, f.original);
    rewriteEtcFile(f.copy, f.inside, { pid: other.pid, runtime: { ino: { mnt: other.mnt, net: 0, uts: 0 } } as never }, "new\n");
    expect(readFileSync(f.copy, "utf8")).toBe("new\n");
    expect(readFileSync(f.original, "utf8")).toBe("new\n");
    expect(readFileSync(f.inside, "utf8")).toBe("host\n");
  });

  test("a pid outside the sandbox's mount namespace (not joined yet, or recycled): only the copy", async () => {
    const f = setup();
    const other = await otherNamespace(f.inside, f.original);
    // The recorded namespace is another one: the process is not (or no longer) the sandbox's.
    rewriteEtcFile(f.copy, f.inside, { pid: other.pid, runtime: { ino: { mnt: other.mnt + 1, net: 0, uts: 0 } } as never }, "new\n");
    expect(readFileSync(f.original, "utf8")).toBe("original\n");
    expect(readFileSync(f.inside, "utf8")).toBe("host\n");
    // The daemon's own pid in a row claiming the daemon's namespace: /proc/PID/root is the host's root.
    const own = statSync("/proc/self/ns/mnt").ino;
    rewriteEtcFile(f.copy, f.inside, { pid: process.pid, runtime: { ino: { mnt: own, net: 0, uts: 0 } } as never }, "newer\n");
    expect(readFileSync(f.inside, "utf8")).toBe("host\n");
    expect(readFileSync(f.copy, "utf8")).toBe("newer\n");
  });
});
