// Where podman 4-6 keep network files: storage.conf's graphroot moves them
// (rootless), and BURROW_NETWORKS_DIR wins over everything.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { rootlessGraphRoot } from "../../src/machine/containers-conf.ts";
import { networksDirOf } from "../../src/net/netavark/backend.ts";

const dir = mkdtempSync(`${tmpdir()}/burrow-places-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function home(name: string, userConf?: string, systemConf?: string) {
  const h = `${dir}/${name}`;
  mkdirSync(`${h}/.config/containers`, { recursive: true });
  if (userConf !== undefined) writeFileSync(`${h}/.config/containers/storage.conf`, userConf);
  const sys = `${h}/system-storage.conf`;
  if (systemConf !== undefined) writeFileSync(sys, systemConf);
  return { HOME: h, USER: "alice", CONTAINERS_STORAGE_CONF: sys };
}

test("graphroot: the user's storage.conf, else the system's rootless_storage_path with $HOME/$UID/$USER, else none", () => {
  expect(rootlessGraphRoot(home("a", '[storage]\ngraphroot = "/data/alice/storage"\n'), 1000)).toBe("/data/alice/storage");
  expect(rootlessGraphRoot(home("b", undefined, '[storage]\nrootless_storage_path = "$HOME/s-$UID-$USER"\n'), 1000)).toBe(`${dir}/b/s-1000-alice`);
  expect(rootlessGraphRoot(home("c"), 1000)).toBeUndefined();
  // Not TOML, or a relative path: not used (podman itself refuses such a file).
  expect(rootlessGraphRoot(home("d", "graphroot = [", '[storage]\nrootless_storage_path = "rel/path"\n'), 1000)).toBeUndefined();
});

test("the network directory: BURROW_NETWORKS_DIR, else the graphroot's networks/, else podman's default", () => {
  const paths = { rootless: true, uid: 1000, runtimeDir: "/r", stateDir: "/s", cniConfigDir: "/c", networksDir: "/default/networks", netavarkDir: "/nv" };
  const env = home("e", '[storage]\ngraphroot = "/data/e"\n');
  expect(networksDirOf(paths, { ...env, BURROW_NETWORKS_DIR: "/default/networks" })).toBe("/default/networks");
  expect(networksDirOf(paths, env)).toBe("/data/e/networks");
  expect(networksDirOf({ ...paths, rootless: false }, env)).toBe("/default/networks");
  expect(networksDirOf(paths, home("f"))).toBe("/default/networks");
});
