// run/exec flags podman users type (-i, -t, -it, -e, --env-file, -w,
// --user, -d -t) end to end: dist/burrow as the unprivileged test user and
// as root in a test netns. The -t cases run burrow under a real
// pseudo-terminal made by util-linux `script`, whose window size the test
// sets with stty.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chownSync, readFileSync, writeFileSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { burrowBin, integrationUnavailable, testUser } from "../helpers/env.ts";

const why = integrationUnavailable() ?? (Bun.which("script") ? null : "util-linux `script` is missing (apt-get install bsdutils)");
if (why) console.warn(`skipping run/exec flag integration tests: ${why}`);

/** Single-quotes `s` for sh. */
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * Runs `shellCmd` under a fresh pty (script -qec) as the context's user.
 * `$B` in it is burrow. The caller writes to stdin (what is "typed") and
 * reads stdout (what the terminal shows).
 */
function underPty(t: BurrowContext, shellCmd: string) {
  const p = t.spawn(["script", "-qec", `B=${q(burrowBin())}; ${shellCmd}`, "/dev/null"], { stdin: "pipe" });
  let shown = "";
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      shown += Buffer.from(value).toString("utf8");
    }
  })();
  return {
    proc: p,
    shown: () => shown,
    async waitFor(text: string, ms = 15000) {
      const end = Date.now() + ms;
      while (!shown.includes(text)) {
        if (Date.now() > end) throw new Error(`"${text}" did not show up on the terminal; it shows: ${JSON.stringify(shown)}`);
        await Bun.sleep(20);
      }
    },
    type(s: string) {
      const sink = p.stdin as import("bun").FileSink;
      sink.write(s);
      sink.flush();
    },
    async finish(ms = 15000) {
      (p.stdin as import("bun").FileSink).end();
      const timer = setTimeout(() => p.kill("SIGKILL"), ms);
      await p.exited;
      clearTimeout(timer);
      await pump;
      return shown;
    },
  };
}

for (const mode of ["rootless", "rootful"] as const) {
  describe.skipIf(!!why)(`run/exec process flags (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("-it: the command has a terminal of the outer size, resizes reach it, ^C reaches it", async () => {
      // The outer pty's name goes to a file so the test can resize it from outside.
      const outer = `${t.dirs.root}/outer-tty`;
      const inner = `trap 'stty size' WINCH; trap 'echo got-int; exit 3' INT; tty; test -t 0 && echo stdin-is-tty; stty size; echo ready; while :; do sleep 0.05; done`;
      const pty = underPty(
        t,
        `stty rows 41 cols 101; tty > ${q(outer)}; before=$(stty -g); "$B" run --rm --network none -it -- sh -c ${q(inner)}; echo "exit=$?"; [ "$(stty -g)" = "$before" ] && echo terminal-restored`,
      );
      await pty.waitFor("ready");
      // Raw outer terminal: the inner pty's \r\n arrives as is.
      expect(pty.shown()).toMatch(/\/dev\/pts\/\d+\r\nstdin-is-tty\r\n41 101\r\nready\r\n/);
      // A new size on the outer terminal: burrow gets SIGWINCH and passes it on.
      const outerPath = readFileSync(outer, "utf8").trim();
      const r = Bun.spawnSync(["stty", "-F", outerPath, "rows", "52", "cols", "123"]);
      expect(r.exitCode).toBe(0);
      await pty.waitFor("52 123");
      // ^C typed on the outer terminal travels raw to the command's pty.
      pty.type("\x03");
      await pty.waitFor("exit=3");
      await pty.waitFor("terminal-restored");
      const shown = await pty.finish();
      expect(shown).toContain("got-int");
      expect(pty.proc.exitCode).toBe(0);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    });

    test("-it: typed input reaches the command; its exit status comes back", async () => {
      const pty = underPty(t, `"$B" run --rm --network none -it -- sh -c 'echo ready; read line; echo "read:$line"; exit 7'; echo "exit=$?"`);
      await pty.waitFor("ready");
      pty.type("hello pty\r");
      await pty.waitFor("exit=7");
      expect(await pty.finish()).toContain("read:hello pty");
    });

    test("-t with stdin not a terminal is refused: one line, 125, nothing left behind", async () => {
      for (const flags of [["-t"], ["-it"]]) {
        const r = await t.burrow(["run", "--rm", "--network", "none", ...flags, "--", "true"]);
        expect(r.code).toBe(125);
        expect(r.stdout).toBe("");
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain('the input device is not a TTY: "burrow run -t" needs a terminal on stdin');
      }
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    });

    test("without -i the command's stdin is /dev/null, with -i it is the caller's", async () => {
      const cmd = ["sh", "-c", "cat; echo end"];
      const without = await t.burrow(["run", "--rm", "--network", "none", "--", ...cmd], { stdin: "typed\n" });
      expect(without).toMatchObject({ code: 0, stdout: "end\n" });
      const withI = await t.burrow(["run", "--rm", "--network", "none", "-i", "--", ...cmd], { stdin: "typed\n" });
      expect(withI).toMatchObject({ code: 0, stdout: "typed\nend\n" });
    });

    test("-e, --env-file, -w and --user are what the command sees", async () => {
      const envFile = `${t.dirs.root}/app.env`;
      writeFileSync(envFile, "# settings\nFROM_FILE=file value\nOVERRIDDEN=file\n  PASSED\n\nNOT_IN_CALLER\n");
      if (mode === "rootless") chownSync(envFile, testUser().uid, testUser().gid);
      const r = await t.burrow(
        [
          "run",
          "--rm",
          "--network",
          "none",
          "-e",
          "A=1",
          "-eOVERRIDDEN=flag",
          "-e",
          "FROM_CALLER",
          "-e",
          "ABSENT",
          "--env-file",
          envFile,
          "-w",
          "/usr/share",
          "-u",
          "1000:1000",
          "--",
          "sh",
          "-c",
          "env; echo pwd=$(pwd); echo ids=$(id -u):$(id -g)",
        ],
        { env: { FROM_CALLER: "caller value", PASSED: "passed value", ABSENT: undefined, NOT_IN_CALLER: undefined } },
      );
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const lines = r.stdout.split("\n");
      for (const want of [
        "A=1",
        "OVERRIDDEN=flag",
        "FROM_CALLER=caller value",
        "FROM_FILE=file value",
        "PASSED=passed value",
        "pwd=/usr/share",
        "ids=1000:1000",
      ])
        expect(lines).toContain(want);
      expect(r.stdout).not.toMatch(/^(ABSENT|NOT_IN_CALLER)=/m);
    });

    test("--user by name from the host's /etc/passwd, and HOME from it", async () => {
      const r = await t.burrow(["run", "--rm", "--network", "none", "--user", "daemon", "--", "sh", "-c", "echo $(id -u):$(id -g) $HOME"]);
      expect(r).toMatchObject({ code: 0, stdout: "1:1 /usr/sbin\n" });
    });

    test("bad --user, -w and --env-file values: one line naming the value, 125, nothing left behind", async () => {
      const cases: [string[], string][] = [
        [["--user", "no-such-user"], 'unable to find user "no-such-user"'],
        [["-w", "relative/dir"], '-w/--workdir "relative/dir" must be an absolute path'],
        [["-w", "/no/such/dir"], '-w/--workdir "/no/such/dir" is not an existing directory'],
        [["--env-file", "/no/such.env"], "cannot read env file /no/such.env: ENOENT"],
        [["-e", "=x"], 'invalid environment variable "=x"'],
      ];
      if (mode === "rootless") cases.push([["--user", "70000"], "uid 70000 is not mapped in the sandbox's user namespace (mapped uids: 0-65536)"]);
      for (const [flags, msg] of cases) {
        const r = await t.burrow(["run", "--rm", "--name", "bad", "--network", "none", ...flags, "--", "true"]);
        expect(r.code).toBe(125);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain(msg);
      }
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
    });

    test("exec takes the same flags, -it included", async () => {
      await t.burrowOk(["run", "-d", "--name", "ex", "--network", "none", "--", "sleep", "60"]);
      try {
        const r = await t.burrow(["exec", "-e", "X=from-exec", "-w", "/usr", "-u", "1000", "ex", "--", "sh", "-c", "echo $X $(pwd) $(id -u)"]);
        expect(r).toMatchObject({ code: 0, stdout: "from-exec /usr 1000\n" });
        const piped = await t.burrow(["exec", "-i", "ex", "--", "cat"], { stdin: "via stdin\n" });
        expect(piped.stdout).toBe("via stdin\n");
        const refused = await t.burrow(["exec", "-t", "ex", "--", "true"]);
        expect(refused.code).toBe(125);
        // The enter child's own errors go to the caller's stderr, not into the pty.
        const errFile = `${t.dirs.root}/exec-err`;
        const pty = underPty(
          t,
          `stty rows 30 cols 90; "$B" exec -it ex sh -c 'tty; stty size'; echo "exit=$?"; "$B" exec -it -u 70000:0 ex id -u 2>${q(errFile)}; echo "exit=$?"; [ "$(stty size)" = "30 90" ] && stty -a | grep -q " icanon" && echo all-done`,
        );
        await pty.waitFor("all-done");
        const shown = await pty.finish();
        expect(shown).toMatch(/\/dev\/pts\/\d+\r\n30 90\r\nexit=0\r\n/);
        if (mode === "rootless") {
          expect(shown).toMatch(/exit=0\r\n[\s\S]*exit=125/);
          expect(readFileSync(errFile, "utf8")).toContain("uid 70000 is not mapped in the sandbox's user namespace (mapped uids: 0-65536)");
        } else expect(shown).toMatch(/70000\r\nexit=0/);
      } finally {
        await t.burrow(["rm", "-f", "ex"]);
      }
    });

    test("-d -t: the detached command has a terminal and logs shows its output", async () => {
      // Idle -d -t sandboxes beside it: the daemon reads every pty master
      // on its event loop and stays responsive.
      for (let i = 0; i < 4; i++) await t.burrowOk(["run", "-d", "-t", "--name", `idle${i}`, "--network", "none", "--", "sleep", "60"]);
      await t.burrowOk([
        "run",
        "-d",
        "-t",
        "--name",
        "dt",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "tty; test -t 1 && echo out-is-tty; stty size; echo done; sleep 60",
      ]);
      let logs = "";
      const end = Date.now() + 10000;
      while (!logs.includes("done") && Date.now() < end) {
        logs = await t.burrowOk(["logs", "dt"]);
        await Bun.sleep(50);
      }
      expect(logs).toMatch(/^\/dev\/pts\/\d+\r\nout-is-tty\r\n24 80\r\ndone\r\n/);
      expect(await t.burrow(["run", "--rm", "--network", "none", "--", "echo", "still-serving"])).toMatchObject({ code: 0, stdout: "still-serving\n" });
      await t.burrowOk(["rm", "-f", "dt", "idle0", "idle1", "idle2", "idle3"]);
    });
  });
}
