// podman's capability rules (src/sandbox/capabilities.ts): defaults, --cap-add,
// --cap-drop, ALL, --privileged, names in any of podman's spellings.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { CAPABILITIES, capabilityNumbers, PODMAN_DEFAULT_CAPABILITIES, resolveCapabilities, splitCapabilityList } from "../../src/sandbox/capabilities.ts";

const resolve = (capAdd: string[] = [], capDrop: string[] = [], privileged = false) =>
  resolveCapabilities({ capAdd, capDrop, privileged }, PODMAN_DEFAULT_CAPABILITIES);

describe("resolveCapabilities", () => {
  test("the defaults are podman's, in kernel order", () => {
    expect(resolve()).toEqual(CAPABILITIES.filter((c) => PODMAN_DEFAULT_CAPABILITIES.includes(c)));
    expect(resolve()).not.toContain("CAP_NET_ADMIN");
    expect(resolve()).not.toContain("CAP_SYS_ADMIN");
  });
  test("add and drop take podman's spellings", () => {
    expect(resolve(["net_admin", "CAP_SYS_TIME"], ["chown"])).toEqual(
      CAPABILITIES.filter((c) => (PODMAN_DEFAULT_CAPABILITIES.includes(c) || c === "CAP_NET_ADMIN" || c === "CAP_SYS_TIME") && c !== "CAP_CHOWN"),
    );
  });
  test("--cap-drop ALL then --cap-add: only what was added", () => {
    expect(resolve(["NET_RAW"], ["all"])).toEqual(["CAP_NET_RAW"]);
    expect(resolve([], ["ALL"])).toEqual([]);
  });
  test("--cap-add ALL is every capability the kernel knows, minus --cap-drop", () => {
    expect(resolve(["ALL"])).toEqual([...CAPABILITIES]);
    expect(resolve(["ALL"], ["SYS_ADMIN"])).toEqual(CAPABILITIES.filter((c) => c !== "CAP_SYS_ADMIN"));
    const older = CAPABILITIES.slice(0, 38);
    expect(resolveCapabilities({ capAdd: ["ALL"], capDrop: [], privileged: false }, PODMAN_DEFAULT_CAPABILITIES, older)).toEqual(older);
  });
  test("--privileged is everything; bad names are still refused", () => {
    expect(resolve([], [], true)).toEqual([...CAPABILITIES]);
    expect(() => resolve(["NOPE"], [], true)).toThrow('invalid --cap-add "NOPE"');
  });
  test("an unknown name, or one newer than the kernel, is one line naming it", () => {
    expect(() => resolve(["CAP_FLY"])).toThrow(/^invalid --cap-add "CAP_FLY": not a capability this kernel knows/);
    expect(() => resolve([], ["x\ny"])).toThrow('invalid --cap-drop "x\\ny"');
    expect(() => resolveCapabilities({ capAdd: ["BPF"], capDrop: [], privileged: false }, [], CAPABILITIES.slice(0, 38))).toThrow(`invalid --cap-add "BPF"`);
  });
  test("a bad containers.conf default is named as such", () => {
    expect(() => resolveCapabilities({ capAdd: [], capDrop: [], privileged: false }, ["CAP_TYPO"])).toThrow("invalid default_capabilities");
  });
  test("property: the result is a subset of the known set, holds every add and no drop", () => {
    const name = fc.constantFrom(...CAPABILITIES);
    fc.assert(
      fc.property(fc.array(name), fc.array(name), (add, drop) => {
        const got = resolve(add, drop);
        for (const c of got) expect(CAPABILITIES).toContain(c as (typeof CAPABILITIES)[number]);
        for (const c of drop) expect(got).not.toContain(c);
        for (const c of add) if (!drop.includes(c)) expect(got).toContain(c);
      }),
    );
  });
  test("numbers and comma lists", () => {
    expect(capabilityNumbers(["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_CHECKPOINT_RESTORE"])).toEqual([0, 12, 40]);
    expect(splitCapabilityList(["NET_ADMIN,SYS_TIME", "", "KILL"])).toEqual(["NET_ADMIN", "SYS_TIME", "KILL"]);
  });
});
