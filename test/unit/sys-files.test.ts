// src/sys/files.ts: the CLI's stat, lstat and small reads on libc, checked
// against node:fs on real files of every type the trust checks look at.
import { afterAll, expect, test } from "bun:test";
import fc from "fast-check";
import { chmodSync, mkdtempSync, openSync, closeSync, rmSync, statSync, lstatSync, symlinkSync, writeFileSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { tmpdir } from "node:os";
import { fstatFd, lstatPath, parentDir, readTextFile, statPath, type FileStat } from "../../src/sys/files.ts";
import { SysError } from "../../src/sys/libc.ts";

const dir = mkdtempSync(`${tmpdir()}/burrow-files-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function same(ours: FileStat | null, theirs: Stats): void {
  expect(ours).not.toBeNull();
  const o = ours!;
  expect([o.mode, o.uid, o.gid, o.nlink, o.ino, o.size]).toEqual([theirs.mode, theirs.uid, theirs.gid, theirs.nlink, theirs.ino, theirs.size]);
  expect([o.isDirectory(), o.isFile(), o.isSymbolicLink(), o.isSocket()]).toEqual([
    theirs.isDirectory(),
    theirs.isFile(),
    theirs.isSymbolicLink(),
    theirs.isSocket(),
  ]);
}

test("stat, lstat and fstat agree with node:fs on a directory, a file, a link and a socket", async () => {
  const file = `${dir}/file`;
  writeFileSync(file, "x".repeat(5000));
  chmodSync(file, 0o640);
  const link = `${dir}/link`;
  symlinkSync(file, link);
  const sock = `${dir}/sock`;
  const server = Bun.listen({ unix: sock, socket: { data() {} } });
  try {
    for (const p of [dir, file, sock]) {
      same(statPath(p), statSync(p));
      same(lstatPath(p), lstatSync(p));
    }
    same(lstatPath(link), lstatSync(link));
    expect(lstatPath(link)!.isSymbolicLink()).toBe(true);
    same(statPath(link), statSync(file));
    expect(statPath(sock)!.isSocket()).toBe(true);
    const fd = openSync(file, "r");
    try {
      same(fstatFd(fd), statSync(file));
    } finally {
      closeSync(fd);
    }
  } finally {
    server.stop(true);
  }
});

test("nothing there is null; other failures throw SysError with the path", () => {
  expect(statPath(`${dir}/absent`)).toBeNull();
  expect(lstatPath(`${dir}/absent/deeper`)).toBeNull();
  writeFileSync(`${dir}/plain`, "");
  // ENOTDIR: a path through a file.
  expect(() => statPath(`${dir}/plain/x`)).toThrow(SysError);
  expect(() => fstatFd(-1)).toThrow(/EBADF/);
});

test("readTextFile reads a whole file, larger than one read, and refuses a link with nofollow", () => {
  const text = `${"é".repeat(3000)}\nend`;
  writeFileSync(`${dir}/text`, text);
  expect(readTextFile(`${dir}/text`)).toBe(text);
  expect(readTextFile(`${dir}/none`)).toBeNull();
  symlinkSync(`${dir}/text`, `${dir}/text-link`);
  expect(readTextFile(`${dir}/text-link`)).toBe(text);
  // O_NOFOLLOW met a link.
  expect(() => readTextFile(`${dir}/text-link`, { nofollow: true })).toThrow(expect.objectContaining({ syscall: "open", code: "ELOOP" }));
  expect(readTextFile("/proc/self/stat")).toStartWith(`${process.pid} (`);
});

test("parentDir is node:path's dirname for paths without repeated slashes", () => {
  for (const p of ["/", "/a", "/a/", "/a/b", "/a/b/", "a", "a/b", ".", "", "/run/user/1000/burrow"]) expect(parentDir(p)).toBe(dirname(p));
  fc.assert(
    fc.property(fc.array(fc.constantFrom("/", "a", "bc", ".", ".."), { maxLength: 8 }), (parts) => {
      const p = parts.join("").replace(/\/{2,}/g, "/");
      expect(parentDir(p)).toBe(dirname(p));
    }),
  );
});
