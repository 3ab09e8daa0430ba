// The daemon's write of a foreground run's enter options into the CLI's
// FIFO (src/daemon/enter-ahead.ts): only into a FIFO of this user's with a
// reader, never through a link or into another kind of file, one whole
// block, and the name removed whatever happened.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { sendEnterOptions } from "../../src/daemon/enter-ahead.ts";
import { optionsBlock } from "../../src/sandbox/enter-spawn.ts";
import { makeFifo } from "../../src/sys/files.ts";
import { close } from "../../src/sys/ns.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(`${tmpdir()}/enter-ahead-`);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const target = { session: { user: "/proc/1/ns/user" }, net: "/run/x/pins/a/net", cwd: "/srv", caps: ["CAP_CHOWN" as const] };

/** What is waiting on the read end now. */
function drain(fd: number): Buffer {
  const buf = Buffer.alloc(8192);
  const n = readSync(fd, buf);
  return buf.subarray(0, n);
}

test("writes the whole block into a FIFO with a reader, then removes its name", () => {
  const path = `${dir}/fifo`;
  const [r, w] = makeFifo(path);
  try {
    expect(sendEnterOptions(path, target)).toBe(true);
    expect(drain(r)).toEqual(optionsBlock(["-U", "/proc/1/ns/user", "-n", "/run/x/pins/a/net", "-c", "/srv", "-C", "000000001"]));
    expect(existsSync(path)).toBe(false);
  } finally {
    close(r);
    close(w);
  }
});

test("writes nothing into a regular file, through a link, into a FIFO nobody reads, or where nothing is; each name is removed", () => {
  const file = `${dir}/file`;
  writeFileSync(file, "keep");
  const held = openSync(file, "r");
  try {
    expect(sendEnterOptions(file, target)).toBe(false);
    expect(existsSync(file)).toBe(false);
    // Its bytes as they were: nothing was written into it.
    expect(drain(held).toString()).toBe("keep");
  } finally {
    closeSync(held);
  }

  // A link to a FIFO with a reader: refused by lstat, the FIFO itself untouched.
  const fifo = `${dir}/real`;
  const [r, w] = makeFifo(fifo);
  try {
    const link = `${dir}/link`;
    symlinkSync(fifo, link);
    expect(sendEnterOptions(link, target)).toBe(false);
    expect(existsSync(fifo)).toBe(true);
    expect(() => drain(r)).toThrow(/EAGAIN/);
  } finally {
    close(r);
    close(w);
  }

  // No reader: O_NONBLOCK gives ENXIO instead of a wait.
  const lonely = `${dir}/lonely`;
  const [r2, w2] = makeFifo(lonely);
  close(r2);
  close(w2);
  expect(sendEnterOptions(lonely, target)).toBe(false);

  expect(sendEnterOptions(`${dir}/none`, target)).toBe(false);
});

test("makeFifo: both ends are one FIFO, and stay one once the name is gone", () => {
  const path = `${dir}/fifo`;
  const [r, w] = makeFifo(path);
  try {
    rmSync(path);
    writeSync(w, "x");
    expect(drain(r).toString()).toBe("x");
  } finally {
    close(r);
    close(w);
  }
});

test("a block over one atomic pipe write is left to the CLI", () => {
  const path = `${dir}/fifo`;
  const [r, w] = makeFifo(path);
  try {
    expect(sendEnterOptions(path, { ...target, cwd: `/${"d".repeat(5000)}` })).toBe(false);
    expect(() => drain(r)).toThrow(/EAGAIN/);
  } finally {
    close(r);
    close(w);
  }
});
