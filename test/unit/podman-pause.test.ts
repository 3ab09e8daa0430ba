// podman's pause process as burrow reads it (src/podman-pause.ts) and the
// ids a user namespace maps (src/net/netavark/podman-netns.ts): pure parts.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { outsideId } from "../../src/net/netavark/podman-netns.ts";
import { pausePidFile, podmanMajor, readPausePid, sharedPause } from "../../src/podman-pause.ts";

describe("podmanMajor", () => {
  test("reads the major version podman prints", () => {
    expect(podmanMajor("podman version 5.8.6\n")).toBe(5);
    expect(podmanMajor("podman version 4.3.1\n")).toBe(4);
    expect(podmanMajor("podman version 10.0.0-dev\n")).toBe(10);
  });
  test("anything else is no version", () => {
    for (const text of ["", "podman 5.8.6", "version 5.8.6", "docker version 5.0.0", "podman version x.1"]) expect(podmanMajor(text)).toBeNull();
  });
});

describe("outsideId", () => {
  test("the host id a map gives inside id 0, or another inside id", () => {
    const map = "         0       1001          1\n         1     100000      65536\n";
    expect(outsideId(map)).toBe(1001);
    expect(outsideId(map, 1)).toBe(100000);
    expect(outsideId(map, 65536)).toBe(165535);
    expect(outsideId(map, 65537)).toBeNull();
  });
  test("the initial namespace's identity map, and nonsense", () => {
    expect(outsideId("         0          0 4294967295\n")).toBe(0);
    expect(outsideId("")).toBeNull();
    expect(outsideId("a b c\n")).toBeNull();
  });
});

describe("readPausePid and sharedPause", () => {
  let dir: string;
  const env = () => ({ XDG_RUNTIME_DIR: dir });
  const write = (text: string) => {
    mkdirSync(`${dir}/libpod/tmp`, { recursive: true });
    writeFileSync(pausePidFile(env())!, text);
  };
  beforeEach(() => {
    dir = mkdtempSync(`${tmpdir()}/burrow-pause-`);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("no XDG_RUNTIME_DIR, no file: none", () => {
    expect(pausePidFile({})).toBeNull();
    expect(readPausePid({})).toBeNull();
    expect(readPausePid(env())).toBeNull();
  });
  test("a live process of this user, as podman writes it (no newline): its pid; in our own user namespace, shared", () => {
    write(String(process.pid));
    expect(readPausePid(env())).toBe(process.pid);
    // This process is in its own user namespace: the "pause process" shares it.
    expect(sharedPause(env())).toBe(process.pid);
  });
  test("not a pid, a dead pid, or another user's process: none", () => {
    for (const text of ["", "abc", "-1", "0", "12 34", `${process.pid}x`, "99999999999"]) {
      write(text);
      expect(readPausePid(env())).toBeNull();
    }
    // pid 1 belongs to root: only a test run as root would take it.
    write("1");
    if (process.getuid?.() !== 0) expect(readPausePid(env())).toBeNull();
  });
});
