// The C enter helper (src/sandbox/enter-helper.c) and its argv, built from
// the validated EnterRequest (src/sandbox/enter-spawn.ts). The joins and the
// confinement inside a real sandbox are the integration tests' (isolation,
// process-flags, lifecycle run with the helper: the built binary uses it);
// here: the translation, the helper's strict parsing, and the command-side
// answers that need no namespace.
import { beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, readFileSync, writeSync } from "node:fs";
import { buildEnterHelper } from "../../scripts/build.ts";
import { helperArgs, optionsBlock } from "../../src/sandbox/enter-spawn.ts";
import { sealedExecutable } from "../../src/sys/memfd.ts";
import { close } from "../../src/sys/ns.ts";
import { pipe, writeAll } from "../../src/sys/sockets.ts";
import { repoRoot } from "../helpers/env.ts";

describe("helperArgs", () => {
  test("every field of the request becomes its option, the command after --", () => {
    const args = helperArgs(
      {
        session: { user: "/proc/9/ns/user", mnt: "/proc/9/ns/mnt" },
        net: "/pins/net",
        uts: "/pins/uts",
        mnt: "/pins/mnt",
        tty: true,
        errorFd: 3,
        workdir: "/w",
        cwd: "/c",
        user: { uid: 1000, gid: 100, groups: [10, 20] },
        caps: ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"],
        confine: true,
      },
      ["sh", "-c", "-- x"],
    );
    expect(args).toEqual([
      ...["-U", "/proc/9/ns/user", "-M", "/proc/9/ns/mnt", "-n", "/pins/net", "-u", "/pins/uts", "-m", "/pins/mnt", "-t", "-e", "3"],
      ...["-w", "/w", "-c", "/c", "-i", "1000:100:10,20", "-C", "10000000401", "-L", "--", "sh", "-c", "-- x"],
    ]);
  });

  test("an empty request is just the command; an empty capability list keeps nothing", () => {
    expect(helperArgs({ session: {} }, ["true"])).toEqual(["--", "true"]);
    expect(helperArgs({ session: {}, caps: [] }, ["true"])).toEqual(["-C", "000000000", "--", "true"]);
  });
});

describe("the helper itself", () => {
  let helper = `${repoRoot}/dist/burrow-enter-helper`;
  beforeAll(async () => {
    if (!existsSync(helper)) helper = (await buildEnterHelper()) ?? "";
  });

  function run(args: string[]) {
    const p = Bun.spawnSync([helper, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { PATH: "/usr/bin:/bin", BUN_JSC_useConcurrentJIT: "0", KEEP: "1" } });
    return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
  }

  test("refuses malformed options with 125 before doing anything", () => {
    if (!helper) return console.warn("skipped: no musl-gcc to build the helper");
    for (const args of [[], ["-C", "xyz", "--", "true"], ["-i", "1:-2", "--", "true"], ["-e", "1", "--", "true"], ["-Q", "--", "true"], ["-n"]]) {
      const r = run(args);
      expect(r.code, args.join(" ")).toBe(125);
      expect(r.err).toStartWith("Error: ");
    }
  });

  test("not found is 127, not executable 126, in enter.ts's words", () => {
    if (!helper) return console.warn("skipped: no musl-gcc to build the helper");
    expect(run(["--", "no-such-command-here"])).toMatchObject({
      code: 127,
      err: "Error: no-such-command-here: executable file not found in $PATH: no such file or directory\n",
    });
    expect(run(["--", "/etc/passwd"])).toMatchObject({ code: 126, err: "Error: /etc/passwd: permission denied: the file is not executable\n" });
    expect(run(["--", "/etc"])).toMatchObject({ code: 126 });
    expect(run(["-w", "/no/such/dir", "--", "true"])).toMatchObject({ code: 126 });
    expect(run(["-w", "/no/such/dir", "--", "true"]).err).toStartWith("Error: cannot change to the working directory /no/such/dir: chdir(/no/such/dir): ");
  });

  test("execs the command in the working directory with the environment minus BUN_JSC_*", () => {
    if (!helper) return console.warn("skipped: no musl-gcc to build the helper");
    const r = run(["-c", "/tmp", "--", "sh", "-c", 'pwd; env | grep -c BUN_JSC_ || true; echo "$KEEP"']);
    expect(r).toMatchObject({ code: 0, out: "/tmp\n0\n1\n" });
    // A cwd that is gone falls back to /, as enter.ts.
    expect(run(["-c", "/no/such/dir", "--", "pwd"])).toMatchObject({ code: 0, out: "/\n" });
  });

  /** The helper in its -R mode, reading its options from a pipe of burrow's (non-blocking, close-on-exec) as fd 3. */
  function runAhead(command: string[]) {
    const [read, write] = pipe();
    const p = Bun.spawn([helper, "-R", "3", "--", ...command], {
      stdio: ["ignore", "pipe", "pipe", read],
      env: { PATH: "/usr/bin:/bin", BUN_JSC_useConcurrentJIT: "0" },
    });
    close(read);
    let open = true;
    const done = async () => ({ code: await p.exited, out: await new Response(p.stdout).text(), err: await new Response(p.stderr).text() });
    return {
      p,
      send(words: Uint8Array | string) {
        writeAll(write, typeof words === "string" ? Buffer.from(words) : words);
      },
      end() {
        if (open) close(write);
        open = false;
        return done();
      },
    };
  }

  test("optionsBlock: the words' length, a NUL, then each word NUL-terminated", () => {
    expect(optionsBlock(["-c", "/tmp"]).toString("latin1")).toBe("8\x00-c\x00/tmp\x00");
    expect(optionsBlock([]).toString("latin1")).toBe("0\x00");
  });

  test("-R waits for its options on fd 3, then runs the command as with them on its argv, fd 3 closed", async () => {
    if (!helper) return console.warn("skipped: no musl-gcc to build the helper");
    const h = runAhead(["sh", "-c", "pwd; ls /proc/self/fd | wc -l; exit 4"]);
    await Bun.sleep(100);
    // Nothing to go on yet: it waits (and the pipe is non-blocking, as burrow's are).
    expect(h.p.exitCode).toBeNull();
    const block = optionsBlock(["-c", "/tmp", "-C", "400"]);
    h.send(block.subarray(0, 1));
    await Bun.sleep(50);
    h.send(block.subarray(1, 9));
    await Bun.sleep(50);
    // Half a block is no block: it waits for the rest.
    expect(h.p.exitCode).toBeNull();
    h.send(block.subarray(9));
    // The block ends the wait, not EOF: the command runs while the pipe is still open (the daemon writes it so).
    expect(await h.p.exited).toBe(4);
    // stdio and ls's own fd: the options' pipe is not the command's.
    expect(await h.end()).toEqual({ code: 4, out: "/tmp\n4\n", err: "" });
  });

  test("-R reads one block: what follows it (a second writer's copy) is left unread", async () => {
    if (!helper) return console.warn("skipped: no musl-gcc to build the helper");
    const h = runAhead(["pwd"]);
    h.send(Buffer.concat([optionsBlock(["-c", "/tmp"]), optionsBlock(["-c", "/"])]));
    expect(await h.end()).toEqual({ code: 0, out: "/tmp\n", err: "" });
  });

  test("-R called off (no options before EOF) exits 125 without a word; a bad block is refused like bad argv", async () => {
    if (!helper) return console.warn("skipped: no musl-gcc to build the helper");
    expect(await runAhead(["touch", "/tmp/never"]).end()).toEqual({ code: 125, out: "", err: "" });
    const cut = runAhead(["true"]);
    cut.send(optionsBlock(["-c", "/tmp"]).subarray(0, 6));
    expect(await cut.end()).toMatchObject({ code: 125, err: "Error: enter helper: the options on -R end early\n" });
    const unended = runAhead(["true"]);
    unended.send("7\x00-c\x00/tmp");
    expect(await unended.end()).toMatchObject({ code: 125, err: "Error: enter helper: the options on -R do not end with a NUL\n" });
    const headless = runAhead(["true"]);
    headless.send("-c\x00/tmp\x00");
    expect(await headless.end()).toMatchObject({ code: 125, err: "Error: enter helper: the options on -R do not start with their length\n" });
    const huge = runAhead(["true"]);
    huge.send("99999999\x00");
    expect(await huge.end()).toMatchObject({ code: 125, err: "Error: enter helper: the options on -R are too long\n" });
    const bad = runAhead(["true"]);
    bad.send(optionsBlock(["-Q"]));
    expect(await bad.end()).toMatchObject({ code: 125, err: "Error: enter helper: bad arguments\n" });
    // The command is the helper's argv, never the block's: a "--" in it is refused.
    const early = runAhead(["true"]);
    early.send(optionsBlock(["--", "/bin/echo"]));
    expect(await early.end()).toMatchObject({ code: 125, out: "", err: "Error: enter helper: the options on -R hold a --\n" });
    expect(run(["-R", "3", "true"])).toMatchObject({ code: 125, err: "Error: enter helper: -R takes FD, -- and a command\n" });
    expect(run(["-R", "x", "--", "true"])).toMatchObject({ code: 125, err: "Error: enter helper: bad -R\n" });
  });

  test("-C cuts the bounding set to the mask", () => {
    if (!helper) return console.warn("skipped: no musl-gcc to build the helper");
    const r = run(["-C", "400", "--", "grep", "CapBnd", "/proc/self/status"]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe("CapBnd:\t0000000000000400");
  });
});

describe("sealedExecutable", () => {
  test("holds exactly the bytes, at or above the fd asked for, close-on-exec, and refuses every write", () => {
    const bytes = new TextEncoder().encode("#!/bin/sh\necho sealed\n");
    const fd = sealedExecutable("burrow-test", bytes, 64);
    try {
      expect(fd).toBeGreaterThanOrEqual(64);
      expect(readFileSync(`/proc/self/fd/${fd}`, "utf8")).toBe("#!/bin/sh\necho sealed\n");
      // FD_CLOEXEC: fdinfo's flags are octal, O_CLOEXEC is 02000000.
      const flags = Number.parseInt(/^flags:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))![1]!, 8);
      expect(flags & 0o2000000).toBe(0o2000000);
      expect(() => writeSync(fd, "x", 0)).toThrow();
    } finally {
      closeSync(fd);
    }
  });
});
