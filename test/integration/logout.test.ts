// What a logout's `rm -rf $XDG_RUNTIME_DIR/burrow` must not take from running
// sandboxes (issue 10, "logout simulation"), beyond ownership.test.ts's pins,
// socket and holder: their logs, the bridge networks' DNS names, the
// slirp4netns API sockets of port_handler=slirp4netns; and dnsname's dnsmasq
// accounted for through a daemon crash. dist/burrow as the test user (and
// rootful in a test netns where said); every test ends with the leak check.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable, testUser } from "../helpers/env.ts";
import { procEnv } from "../helpers/leaks.ts";
import { listPids } from "../helpers/netns.ts";
import { eventually } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping logout tests: ${why}`);

const until = (cond: () => boolean | Promise<boolean>, ms = 10000) => eventually(cond, ms);

function argvOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

/** Not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** This context's dnsmasq processes (its dirs on their command line, or its test tag). */
function dnsmasqPids(t: BurrowContext): number[] {
  return listPids().filter((pid) => {
    const argv = argvOf(pid);
    return (argv[0] ?? "").endsWith("dnsmasq") && alive(pid) && (argv.some((a) => a.includes(t.dirs.root)) || procEnv(pid).tag === t.tag);
  });
}

/** This context's slirp4netns processes. */
function slirpPids(t: BurrowContext): number[] {
  return listPids().filter((pid) => (argvOf(pid)[0] ?? "").endsWith("slirp4netns") && alive(pid) && procEnv(pid).tag === t.tag);
}

function daemonPids(t: BurrowContext): number[] {
  return listPids().filter((pid) => argvOf(pid)[1] === "__daemon" && procEnv(pid).runtimeDir === t.dirs.runtimeDir);
}

/** What the daemon wrote to its log, also after a logout unlinked the file (its stderr). */
function daemonLog(t: BurrowContext): string {
  return daemonPids(t)
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/fd/2`, "utf8");
      } catch {
        return "";
      }
    })
    .join("");
}

/** A file the test user can create and the test can see: the sandbox's command waits for it. */
function triggerPath(t: BurrowContext, name: string): string {
  return `${t.dirs.root}/trigger-${name}`;
}

const logout = (t: BurrowContext) => rmSync(t.dirs.runtimeDir, { recursive: true, force: true }); // what systemd-logind does

describe.skipIf(!!why)("logout (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(async () => {
    await t.dispose();
  });

  test("logs survive a logout: output from before and after the rm -rf, with -d and -d -t; rm removes them", async () => {
    const script = (name: string) => `echo before-${name}; while [ ! -e ${triggerPath(t, name)} ]; do sleep 0.1; done; echo after-${name}; exec sleep 3031`;
    const plain = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "plain", "--", "sh", "-c", script("plain")])).trim();
    await t.burrowOk(["run", "-d", "-t", "--network", "none", "--name", "tty", "--", "sh", "-c", script("tty")]);
    expect(await until(async () => (await t.burrowOk(["logs", "plain"])).includes("before-plain"))).toBe(true);
    expect(await until(async () => (await t.burrowOk(["logs", "tty"])).includes("before-tty"))).toBe(true);

    logout(t);

    // what was written before the logout is still shown
    expect(await t.burrowOk(["logs", "plain"])).toBe("before-plain\n");
    expect(await t.burrowOk(["logs", "tty"])).toBe("before-tty\r\n");
    // and what is written after it
    writeFileSync(triggerPath(t, "plain"), "");
    writeFileSync(triggerPath(t, "tty"), "");
    expect(await until(async () => (await t.burrowOk(["logs", "plain"])) === "before-plain\nafter-plain\n")).toBe(true);
    expect(await until(async () => (await t.burrowOk(["logs", "tty"])) === "before-tty\r\nafter-tty\r\n")).toBe(true);
    // a log is the user's file, never in the runtime dir a logout removes
    expect(readFileSync(`${t.dirs.stateDir}/sandboxes/${plain}/log`, "utf8")).toBe("before-plain\nafter-plain\n");
    expect(existsSync(`${t.dirs.runtimeDir}/sandboxes/${plain}/log`)).toBe(false);
    // a stopped sandbox keeps its log; rm removes it
    await t.burrowOk(["stop", "-t", "1", "plain"]);
    expect(await t.burrowOk(["logs", "plain"])).toBe("before-plain\nafter-plain\n");
    await t.burrowOk(["rm", "-f", "plain", "tty"]);
    expect(readdirSync(`${t.dirs.stateDir}/sandboxes`)).toEqual([]);
    expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
  }, 60000);

  test("a log file that is a symbolic link is refused, not followed", async () => {
    const id = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "linked", "--", "sh", "-c", "echo hi; exec sleep 3032"])).trim();
    expect(await until(async () => (await t.burrowOk(["logs", "linked"])) === "hi\n")).toBe(true);
    const log = `${t.dirs.stateDir}/sandboxes/${id}/log`;
    rmSync(log);
    symlinkSync("/etc/shadow", log);
    const r = await t.burrow(["logs", "linked"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`refusing to use ${log}: it is a symbolic link`);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    await t.burrowOk(["rm", "-f", "linked"]);
    expect(existsSync(`${t.dirs.stateDir}/sandboxes/${id}`)).toBe(false);
  }, 30000);
});
