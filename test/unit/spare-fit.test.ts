// What a create does with the spare namespace Worker (src/namespaces/pins.ts).
import { describe, expect, test } from "bun:test";
import { spareFit } from "../../src/namespaces/pins.ts";

const plain = { newNet: true, joinNet: undefined, netOnly: undefined };

describe("spareFit", () => {
  test("a plain sandbox takes a spare made on its CPU, or on any when it names none", () => {
    expect(spareFit({ ...plain, cpu: 1 }, 1)).toBe("take");
    expect(spareFit({ ...plain, cpu: undefined }, 1)).toBe("take");
    expect(spareFit({ ...plain, cpu: undefined }, undefined)).toBe("take");
  });

  test("a plain sandbox on another CPU drops the spare (no later create could use it), so that a new one is made", () => {
    expect(spareFit({ ...plain, cpu: 1 }, undefined)).toBe("drop");
    expect(spareFit({ ...plain, cpu: 0 }, 1)).toBe("drop");
  });

  test("a sandbox that joins a netns (container:, ns:, one made ahead) takes it too: its mount and uts namespaces are new all the same", () => {
    expect(spareFit({ newNet: false, joinNet: "/proc/1/ns/net", cpu: 1 }, 1)).toBe("take");
    expect(spareFit({ newNet: false, joinNet: "/run/user/1000/burrow/pins/warm-1/net", cpu: 0 }, 1)).toBe("drop");
  });

  test("a bare netns made ahead takes it when asked to (its mount and uts namespaces are given up); any other bare netns leaves it", () => {
    expect(spareFit({ newNet: true, netOnly: true, cpu: undefined }, 1, true)).toBe("take");
    expect(spareFit({ newNet: true, netOnly: true, cpu: undefined }, 1)).toBe("leave");
  });

  test("host (the daemon's own netns), a bare netns, or a contradiction leave the spare for the next one", () => {
    expect(spareFit({ newNet: false, cpu: 1 }, 1)).toBe("leave");
    expect(spareFit({ newNet: true, netOnly: true, cpu: 1 }, 1)).toBe("leave");
    expect(spareFit({ newNet: true, joinNet: "/proc/1/ns/net", cpu: 1 }, 1)).toBe("leave");
  });
});
