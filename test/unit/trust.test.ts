// The StrictModes-like checks of src/client/trust.ts on real directories
// (owner and mode logic; the socket and SO_PEERCRED paths are covered by
// test/integration/trust.test.ts against the built binary).
import { afterEach, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { BurrowError } from "../../src/errors.ts";
import { checkPrivateFile, ensurePrivateDir, openPrivateAppend } from "../../src/client/trust.ts";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});
function root(mode = 0o700): string {
  const r = mkdtempSync(`${tmpdir()}/burrow-trust-`);
  chmodSync(r, mode);
  roots.push(r);
  return r;
}
const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BurrowError);
    return (e as Error).message;
  }
  throw new Error("not refused");
};

test("a missing dir is made 0700; an existing private one passes", () => {
  const r = root();
  ensurePrivateDir(`${r}/a/b`);
  expect(statSync(`${r}/a/b`).mode & 0o777).toBe(0o700);
  ensurePrivateDir(`${r}/a/b`);
});

test("group- or world-writable, a symlink, a file, another owner: each refused in one line with the fix", () => {
  const r = root();
  mkdirSync(`${r}/w`, { mode: 0o700 });
  chmodSync(`${r}/w`, 0o770);
  expect(refusal(() => ensurePrivateDir(`${r}/w`))).toBe(
    `refusing to use ${r}/w: it is writable by group or others (mode 0770); fix it with: chmod go-w ${r}/w`,
  );
  symlinkSync(`${r}/w`, `${r}/l`);
  expect(refusal(() => ensurePrivateDir(`${r}/l`))).toContain("it is a symbolic link");
  writeFileSync(`${r}/f`, "");
  expect(refusal(() => ensurePrivateDir(`${r}/f`))).toContain("it is not a directory");
  mkdirSync(`${r}/o`, { mode: 0o700 });
  chownSync(`${r}/o`, 65534, 65534);
  expect(refusal(() => ensurePrivateDir(`${r}/o`, 0))).toContain("it is owned by uid 65534, not by you (uid 0)");
});

test("a parent anyone can write is refused unless sticky", () => {
  const open = root(0o777);
  expect(refusal(() => ensurePrivateDir(`${open}/burrow`))).toContain(`its parent ${open} is writable by everyone without the sticky bit (mode 0777)`);
  const sticky = root(0o1777);
  ensurePrivateDir(`${sticky}/burrow`);
});

test("files by name: absent is fine, a symlink is refused, and never followed when opened", () => {
  const r = root();
  expect(checkPrivateFile(`${r}/nope`, "file")).toBe(false);
  writeFileSync(`${r}/victim`, "keep");
  symlinkSync(`${r}/victim`, `${r}/daemon.log`);
  expect(refusal(() => checkPrivateFile(`${r}/daemon.log`, "file"))).toContain("it is a symbolic link");
  expect(refusal(() => openPrivateAppend(`${r}/daemon.log`))).toBe(
    `refusing to use ${r}/daemon.log: it is a symbolic link; remove it (rm ${r}/daemon.log) and run burrow again`,
  );
});
