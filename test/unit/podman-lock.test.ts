// podman's network lock (src/net/netavark/podman-lock.ts) against a real
// classic POSIX lock, as podman's lockfile package takes it (fcntl
// F_SETLKW, F_WRLCK): held here by a python3 process (os.lockf).
import { describe, expect, test } from "bun:test";
import { chownSync, closeSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PODMAN_ROOT_LOCK, podmanLockPaths, withPodmanLock } from "../../src/net/netavark/podman-lock.ts";
import { recordLockHolder, tryRecordLock } from "../../src/sys/proc.ts";
import { holdPosixLock } from "../helpers/posix-lock.ts";

/** A fresh directory for `fn`, removed after it. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-lock-"));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("podman's network lock", () => {
  test("the lock files: podman 5's host-wide one only rootful with podman's own run dir, then the networks dir's", () => {
    expect(podmanLockPaths({ rootless: false, networksDir: "/etc/containers/networks", netavarkDir: "/run/containers/networks" })).toEqual([
      PODMAN_ROOT_LOCK,
      "/etc/containers/networks/netavark.lock",
    ]);
    expect(podmanLockPaths({ rootless: false, networksDir: "/t/n", netavarkDir: "/t/nv" })).toEqual(["/t/n/netavark.lock"]);
    expect(podmanLockPaths({ rootless: true, networksDir: "/h/.local/share/containers/storage/networks", netavarkDir: "/run/containers/networks" })).toEqual([
      "/h/.local/share/containers/storage/networks/netavark.lock",
    ]);
  });

  test("an OFD record lock conflicts with podman's kind (a classic POSIX lock) and names its holder", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "netavark.lock");
      const holder = await holdPosixLock(path);
      const fd = openSync(path, "r+");
      try {
        expect(tryRecordLock(fd, true)).toBe(false);
        expect(tryRecordLock(fd, false)).toBe(false);
        expect(recordLockHolder(fd)).toBe(holder.pid);
        await holder.release();
        expect(recordLockHolder(fd)).toBeNull();
        expect(tryRecordLock(fd, true)).toBe(true);
      } finally {
        closeSync(fd);
      }
    });
  });

  test("withPodmanLock waits for podman's holder, runs after it lets go, and lets go itself, also on a throw", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "netavark.lock");
      const holder = await holdPosixLock(path);
      const order: string[] = [];
      const run = withPodmanLock(
        [path],
        async () => {
          order.push("burrow");
        },
        { rootOwned: false },
      );
      await Bun.sleep(50);
      order.push("podman lets go");
      await holder.release();
      await run;
      expect(order).toEqual(["podman lets go", "burrow"]);
      // Held during fn, released after it (also when fn throws): podman's kind of lock gets it at once.
      await expect(
        withPodmanLock(
          [path],
          async () => {
            const other = openSync(path, "r+");
            try {
              expect(recordLockHolder(other)).toBe(-1);
            } finally {
              closeSync(other);
            }
            throw new Error("fn failed");
          },
          { rootOwned: false },
        ),
      ).rejects.toThrow("fn failed");
      const again = await holdPosixLock(path);
      await again.release();
    });
  });

  test("a holder that stays is given up on in one line naming the file and the process", async () => {
    await inTempDir(async (dir) => {
      const path = join(dir, "netavark.lock");
      const holder = await holdPosixLock(path);
      try {
        let ran = false;
        await expect(
          withPodmanLock(
            [path],
            async () => {
              ran = true;
            },
            { rootOwned: false, waitMs: 100 },
          ),
        ).rejects.toThrow(`podman's network lock ${path} is held by process ${holder.pid} for more than 0.1 s`);
        expect(ran).toBe(false);
      } finally {
        await holder.release();
      }
    });
  });

  test("no directory: nothing to lock; a symlink, a FIFO, or (rootful) a file root does not own is not used", async () => {
    await inTempDir(async (dir) => {
      expect(await withPodmanLock([join(dir, "none/netavark.lock")], async () => "ran", { rootOwned: true })).toBe("ran");
      writeFileSync(join(dir, "target"), "");
      symlinkSync(join(dir, "target"), join(dir, "netavark.lock"));
      await expect(withPodmanLock([join(dir, "netavark.lock")], async () => "ran", { rootOwned: false })).rejects.toThrow(
        `cannot open podman's network lock ${join(dir, "netavark.lock")}`,
      );
      // Not a regular file (a FIFO opens read-write without blocking): refused after the open.
      const fifo = join(dir, "fifo/netavark.lock");
      Bun.spawnSync(["mkdir", join(dir, "fifo")]);
      expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
      await expect(withPodmanLock([fifo], async () => "ran", { rootOwned: false })).rejects.toThrow(
        `podman's network lock ${fifo} is not a regular file: not used`,
      );
      // A rootful daemon's: a lock file root does not own (/run/lock is anyone's to write in) is not trusted; rootless it is the user's own dir.
      const theirs = join(dir, "theirs.lock");
      writeFileSync(theirs, "");
      if (process.getuid?.() === 0) chownSync(theirs, 65534, 65534);
      await expect(withPodmanLock([theirs], async () => "ran", { rootOwned: true })).rejects.toThrow(
        `podman's network lock ${theirs} is not a regular file owned by root: not used`,
      );
      expect(await withPodmanLock([theirs], async () => "ran", { rootOwned: false })).toBe("ran");
    });
  });
});
