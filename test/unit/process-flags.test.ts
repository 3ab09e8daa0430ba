// The flags of run/exec as podman users type them: combined short flags
// (cobra/pflag rules), -e and --env-file (podman's format), --user forms and
// the user-namespace check. Expected values come from podman's documented
// behaviour (podman-run(1): --env, --env-file, --user; pflag shorthands).
import { describe, expect, test } from "bun:test";
import { parseStrict } from "../../src/cli/_args.ts";
import { applyEnvEntry, parseEnvFile, requestedEnv } from "../../src/cli/_process-flags.ts";
import { runArgs } from "../../src/cli/run.ts";
import { checkMapped, parseIdMap, resolveUser } from "../../src/sandbox/user.ts";
import { refusal } from "../helpers/rejection.ts";

const repeatable = ["publish", "network-alias", "dns", "env", "env-file"];
const parse = (...raw: string[]) => parseStrict(raw, runArgs, { repeatable, stopAtPositional: true, command: "run" });

describe("combined short flags", () => {
  test("-it sets both booleans and the command follows", () => {
    const p = parse("-it", "--", "bash");
    expect(p.flags).toEqual({ interactive: true, tty: true });
    expect(p.rest).toEqual(["bash"]);
  });
  test("-dit, -itd and -ti are the same set", () => {
    for (const f of ["-dit", "-itd", "-tid"]) expect(parse(f, "sh").flags).toEqual({ detach: true, interactive: true, tty: true });
    expect(parse("-ti", "sh").flags).toEqual({ interactive: true, tty: true });
  });
  test("booleans then a value flag: the value is the next argument", () => {
    const p = parse("-dp", "8080:80", "--rm", "--", "srv");
    expect(p.flags).toEqual({ detach: true, publish: ["8080:80"], rm: true });
    expect(p.rest).toEqual(["srv"]);
  });
  test("a value glued to its shorthand (-p8080:80, -eK=V, -e=K=V, -w/tmp)", () => {
    expect(parse("-p8080:80", "x").flags.publish).toEqual(["8080:80"]);
    expect(parse("-eK=V", "x").flags.env).toEqual(["K=V"]);
    expect(parse("-e=K=V", "x").flags.env).toEqual(["K=V"]);
    expect(parse("-itw/tmp", "x").flags).toEqual({ interactive: true, tty: true, workdir: "/tmp" });
  });
  test("-e, -w and -u take separate values and -e repeats", () => {
    const p = parse("-e", "A=1", "-e", "B", "-w", "/srv", "-u", "1000:1000", "--env-file", "a.env", "--env-file", "b.env", "--", "env");
    expect(p.flags).toEqual({ env: ["A=1", "B"], workdir: "/srv", user: "1000:1000", "env-file": ["a.env", "b.env"] });
  });
  test("a shorthand value flag at the end with nothing after it is refused", () => {
    expect(refusal(() => parse("-ie")).message).toContain("flag --env needs a value");
  });
  test("an unknown letter in a cluster is named", () => {
    expect(refusal(() => parse("-itx", "sh")).message).toMatch(/^unknown shorthand flag 'x' in -itx for "burrow run"/);
  });
  test("long names and multi-letter aliases keep their meaning (--net, -net=)", () => {
    expect(parse("--net", "none", "x").flags).toEqual({ network: "none" });
    expect(parse("-net=none", "x").flags).toEqual({ network: "none" });
    expect(parse("-d=false", "x").flags).toEqual({ detach: false });
  });
  test("after the first positional nothing is a flag (the command's own -it)", () => {
    const p = parse("-i", "grep", "-it", "x");
    expect(p.flags).toEqual({ interactive: true });
    expect(p.rest).toEqual(["grep", "-it", "x"]);
  });
});

describe("-e / --env", () => {
  const caller = { HOME: "/home/u", LANG: "C.UTF-8", LC_ALL: "C", LC_TIME: "en_GB", EMPTY: "" };
  test("K=V sets, V verbatim (may hold = and be empty)", () => {
    const out: Record<string, string> = {};
    applyEnvEntry(out, "A=b=c", caller, "");
    applyEnvEntry(out, "B=", caller, "");
    applyEnvEntry(out, "C= spaced ", caller, "");
    expect(out).toEqual({ A: "b=c", B: "", C: " spaced " });
  });
  test("a bare K copies the caller's value; absent in the caller means not set", () => {
    const out: Record<string, string> = {};
    applyEnvEntry(out, "HOME", caller, "");
    applyEnvEntry(out, "EMPTY", caller, "");
    applyEnvEntry(out, "NOT_THERE", caller, "");
    expect(out).toEqual({ HOME: "/home/u", EMPTY: "" });
    expect("NOT_THERE" in out).toBe(false);
  });
  test("K* copies every caller variable with that prefix", () => {
    const out: Record<string, string> = {};
    applyEnvEntry(out, "LC_*", caller, "");
    expect(out).toEqual({ LC_ALL: "C", LC_TIME: "en_GB" });
  });
  test("=V and a name with blanks are refused", () => {
    expect(refusal(() => applyEnvEntry({}, "=x", caller, "")).message).toBe('invalid environment variable "=x": use K=V or K');
    expect(refusal(() => applyEnvEntry({}, "A B=1", caller, "")).message).toBe('environment variable "A B" contains whitespace');
  });
  test("-e wins over --env-file; later files win over earlier ones", () => {
    const env = requestedEnv(
      ["A=from-flag"],
      [
        { path: "1.env", text: "A=file1\nB=file1\n" },
        { path: "2.env", text: "B=file2\nC=file2\n" },
      ],
      caller,
    );
    expect(env).toEqual({ A: "from-flag", B: "file2", C: "file2" });
  });
});

describe("--env-file (podman's format)", () => {
  const caller = { FROM_CALLER: "yes", P_ONE: "1", P_TWO: "2" };
  test("comments, blank lines, leading blanks, bare names, prefixes, CRLF", () => {
    const text = [
      "# a comment",
      "",
      "   ",
      "A=1",
      "  B=two words  ",
      "\tC=x=y",
      "FROM_CALLER",
      "MISSING",
      "P_*",
      "   # indented comment",
      "D=",
      "E=crlf\r",
      "",
    ].join("\n");
    expect(parseEnvFile(text, caller)).toEqual({ A: "1", B: "two words  ", C: "x=y", FROM_CALLER: "yes", P_ONE: "1", P_TWO: "2", D: "", E: "crlf" });
  });
  test("quotes are kept: podman does not unquote", () => {
    expect(parseEnvFile(`Q="quoted"\nS='single'\n`, {})).toEqual({ Q: '"quoted"', S: "'single'" });
  });
  test("a bad line names the file and line number", () => {
    expect(refusal(() => parseEnvFile("A=1\n=oops\n", {}, "app.env")).message).toBe('invalid environment variable "=oops" in app.env:2: use K=V or K');
  });
});

describe("--user", () => {
  const passwd = [
    "root:x:0:0:root:/root:/bin/bash",
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
    "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash",
    "broken line",
    "bob:x:1001:1001::/home/bob:/bin/sh",
  ].join("\n");
  const group = ["root:x:0:", "adm:x:4:alice", "staff:x:50:bob,alice", "alice:x:1000:", "bob:x:1001:", "big:x:70000:alice"].join("\n");

  test("a name: uid, primary gid, home and the groups that list it", () => {
    expect(resolveUser("alice", passwd, group)).toEqual({ uid: 1000, gid: 1000, groups: [4, 50, 70000], home: "/home/alice" });
    expect(resolveUser("root", passwd, group)).toEqual({ uid: 0, gid: 0, groups: [], home: "/root" });
  });
  test("a uid with an entry gets that entry's group and home", () => {
    expect(resolveUser("1001", passwd, group)).toEqual({ uid: 1001, gid: 1001, groups: [50], home: "/home/bob" });
  });
  test("a uid without an entry runs with gid 0, as podman does", () => {
    expect(resolveUser("4242", passwd, group)).toEqual({ uid: 4242, gid: 0, groups: [] });
  });
  test("USER:GROUP and UID:GID: the group as given, no supplementary groups", () => {
    expect(resolveUser("alice:staff", passwd, group)).toEqual({ uid: 1000, gid: 50, groups: [], home: "/home/alice" });
    expect(resolveUser("1000:4", passwd, group)).toEqual({ uid: 1000, gid: 4, groups: [], home: "/home/alice" });
    expect(resolveUser("5000:5000", passwd, group)).toEqual({ uid: 5000, gid: 5000, groups: [] });
  });
  test("unknown names and malformed forms are refused with the value", () => {
    expect(refusal(() => resolveUser("carol", passwd, group)).message).toContain(
      '--user "carol": unable to find user "carol": no matching entries in passwd file',
    );
    expect(refusal(() => resolveUser("alice:wheel", passwd, group)).message).toContain('unable to find group "wheel": no matching entries in group file');
    for (const bad of ["", ":50", "alice:"]) expect(refusal(() => resolveUser(bad, passwd, group)).message).toContain("use USER, UID, USER:GROUP or UID:GID");
    expect(refusal(() => resolveUser("99999999999", passwd, group)).message).toContain("out of range");
  });

  const uidMap = parseIdMap("         0       1001          1\n         1     100000      65536\n");
  const gidMap = parseIdMap("         0       1001          1\n         1     100000      65536\n");
  test("ids inside the namespace's maps pass; unmapped supplementary groups are dropped", () => {
    expect(uidMap).toEqual([
      { inside: 0, count: 1 },
      { inside: 1, count: 65536 },
    ]);
    expect(checkMapped({ uid: 1000, gid: 1000, groups: [4, 70000] }, uidMap, gidMap)).toEqual({ uid: 1000, gid: 1000, groups: [4] });
    expect(checkMapped({ uid: 65536, gid: 0, groups: [] }, uidMap, gidMap).uid).toBe(65536);
  });
  test("a uid or gid outside the maps is refused, naming the mapped ranges", () => {
    expect(refusal(() => checkMapped({ uid: 65537, gid: 0, groups: [] }, uidMap, gidMap)).message).toBe(
      "--user: uid 65537 is not mapped in the sandbox's user namespace (mapped uids: 0-65536); use one of those, or give your user a larger range in /etc/subuid",
    );
    const single = parseIdMap("0 1001 1\n");
    expect(refusal(() => checkMapped({ uid: 0, gid: 5, groups: [] }, single, single)).message).toContain(
      "gid 5 is not mapped in the sandbox's user namespace (mapped gids: 0)",
    );
  });
  test("rootful: the initial namespace maps every id", () => {
    const all = parseIdMap("         0          0 4294967295\n");
    expect(checkMapped({ uid: 123456, gid: 654321, groups: [7] }, all, all)).toEqual({ uid: 123456, gid: 654321, groups: [7] });
  });
});
