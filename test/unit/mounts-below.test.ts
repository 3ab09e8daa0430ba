// The mounts a new sandbox namespace unmounts below burrow's hidden
// directories (src/sys/mount.ts): found from mountinfo text, deepest first.
import { describe, expect, test } from "bun:test";
import { mountsBelow, unescapeMountPath } from "../../src/sys/mount.ts";

const line = (id: number, point: string, fs = "nsfs") => `${id} 30 0:4 net:[4026532] ${point} rw - ${fs} nsfs rw`;

describe("mountsBelow", () => {
  test("strictly below a directory, deepest first; the directory itself, its parents and look-alike siblings are kept", () => {
    const info = [
      line(1, "/", "ext4"),
      line(2, "/run/user/1001", "tmpfs"),
      line(3, "/run/user/1001/burrow/pins/aa/net"),
      line(4, "/run/user/1001/burrow/pins/aa/uts"),
      line(5, "/run/user/1001/burrow", "tmpfs"),
      line(6, "/run/user/1001/burrow-other/pins/bb/net"),
      line(7, "/run/user/1001/burrow/rootless-netns/net"),
      line(8, "/home/u/.local/share/burrow/x", "tmpfs"),
      line(9, "/run/user/1001/burrow/pins", "tmpfs"),
      "",
    ].join("\n");
    expect(mountsBelow(info, ["/run/user/1001/burrow", "/home/u/.local/share/burrow/"])).toEqual([
      "/run/user/1001/burrow/pins/aa/uts",
      "/run/user/1001/burrow/pins/aa/net",
      "/run/user/1001/burrow/rootless-netns/net",
      "/home/u/.local/share/burrow/x",
      "/run/user/1001/burrow/pins",
    ]);
  });

  test("one path mounted twice is listed once (the caller unmounts until nothing is left); escaped paths are matched unescaped", () => {
    const info = [line(1, "/r/b\\040x/pins/a/net"), line(2, "/r/b\\040x/pins/a/net"), line(3, "/r/b/pins/a/net")].join("\n");
    expect(mountsBelow(info, ["/r/b x"])).toEqual(["/r/b x/pins/a/net"]);
    expect(unescapeMountPath("/a\\040b\\011c\\134d")).toBe("/a b\tc\\d");
  });

  test("nothing below: nothing listed", () => {
    expect(mountsBelow([line(1, "/", "ext4"), line(2, "/run", "tmpfs")].join("\n"), ["/run/burrow"])).toEqual([]);
  });
});
