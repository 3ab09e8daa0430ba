// The rootless namespace's CNI plugins find iptables-legacy first in PATH
// exactly when the namespace's mark says so (src/net/cni/rootless-netns.ts).
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RootlessNetns } from "../../src/net/cni/rootless-netns.ts";
import type { Paths } from "../../src/paths.ts";
import type { SpawnRequest } from "../../src/net/cni/spawn.ts";

const root = mkdtempSync(join(tmpdir(), "burrow-legacy-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function namespaceWith(mark: string | null): { rns: RootlessNetns; seen: SpawnRequest[] } {
  const runtimeDir = mkdtempSync(join(root, "run-"));
  mkdirSync(`${runtimeDir}/rootless-netns`);
  if (mark !== null) writeFileSync(`${runtimeDir}/rootless-netns/firewall`, mark);
  const rns = new RootlessNetns({ rootless: true, runtimeDir, stateDir: `${runtimeDir}/state` } as Paths);
  const seen: SpawnRequest[] = [];
  // The runner itself is not started: what it would be asked to run is recorded.
  const record = async (req: SpawnRequest) => {
    seen.push(req);
    return { exitCode: 0, stdout: "", stderr: "" };
  };
  Object.defineProperty(rns, "spawn", { value: record });
  return { rns, seen };
}

const request: SpawnRequest = { argv: ["/usr/lib/cni/firewall"], env: { PATH: "/usr/bin:/usr/sbin", CNI_COMMAND: "ADD" }, stdin: "{}", timeoutMs: 1000 };

test("with the mark, the plugins' PATH starts with the namespace's legacy names; the rest of the request is as asked", async () => {
  const { rns, seen } = namespaceWith("legacy\n");
  expect(rns.usesLegacyIptables()).toBe(true);
  await rns.pluginSpawn(request);
  expect(seen[0]).toEqual({ ...request, env: { ...request.env, PATH: `${rns.dir}/bin:/usr/bin:/usr/sbin` } });
});

test("the names are made again where a logout removed them (the mark is rewritten from the state dir's record)", async () => {
  const legacy = existsSync("/usr/sbin/iptables-legacy") ? realpathSync("/usr/sbin/iptables-legacy") : null;
  if (!legacy) {
    console.log("skipped: no /usr/sbin/iptables-legacy on this machine (Debian: apt-get install iptables)");
    return;
  }
  const { rns } = namespaceWith("legacy\n");
  expect(existsSync(`${rns.dir}/bin`)).toBe(false);
  await rns.pluginSpawn(request);
  for (const name of ["iptables", "ip6tables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"])
    expect(readlinkSync(`${rns.dir}/bin/${name}`)).toBe(legacy);
});

test("without the mark, or with anything else in its file, the request goes as it is", async () => {
  for (const mark of [null, "legacy", "legacy\nnft\n", "nft\n", ""]) {
    const { rns, seen } = namespaceWith(mark);
    expect(rns.usesLegacyIptables()).toBe(false);
    await rns.pluginSpawn(request);
    expect(seen).toEqual([request]);
  }
});
