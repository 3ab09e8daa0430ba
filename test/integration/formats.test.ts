// --format templates, `table`, filters, info and terminal habits, end to end:
// dist/burrow as the unprivileged test user on real sandboxes (issue 9, items
// 1, 2, 5 and 6). Expected outputs follow podman's documented behaviour.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { burrowBin, integrationUnavailable } from "../helpers/env.ts";
import { EXAMPLES } from "../../src/cli/_help.ts";
import { main } from "../../src/cli/index.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping --format integration tests: ${why}`);

const ESC = "\x1b";
const lines = (s: string) => s.split("\n").filter(Boolean);

/** One line on stderr, exit 125, nothing on stdout. */
async function refused(t: BurrowContext, args: string[], message: string | RegExp) {
  const r = await t.burrow(args);
  expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 125, stdout: "" });
  expect(lines(r.stderr)).toHaveLength(1);
  if (typeof message === "string") expect(r.stderr).toContain(message);
  else expect(r.stderr).toMatch(message);
}

describe.skipIf(!!why)("--format and --filter on real sandboxes (rootless)", () => {
  let t: BurrowContext;
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    t = await burrowContext("rootless");
    ids.web = (
      await t.burrowOk([
        "run",
        "-d",
        "--name",
        "web",
        "--label",
        "app=web",
        "--label",
        "tier=front",
        "-p",
        "127.0.0.1:18380-18381:80-81",
        "-p",
        "[::1]:18390:90",
        "--",
        "sleep",
        "120",
      ])
    ).trim();
    ids.db = (await t.burrowOk(["run", "-d", "--name", "db", "-l", "app=db", "--network", "none", "--", "sleep", "120"])).trim();
    const done = await t.burrow(["run", "--name", "done", "--network", "none", "--", "true"]);
    expect(done.code).toBe(0);
    ids.done = JSON.parse(await t.burrowOk(["inspect", "done"]))[0].Id;
  }, 60000);
  afterAll(async () => {
    await t.burrow(["rm", "-f", "web", "db", "done"]);
    await t.dispose();
  }, 30000);

  test("ps: templates, table headers, --no-trunc, -l, ports folded and IPv6 bracketed", async () => {
    expect(lines(await t.burrowOk(["ps", "--format", "{{.Names}} {{.Status}}"])).sort()).toEqual(["db Up", "web Up"]);
    expect(await t.burrowOk(["ps", "--filter", "name=web", "--format", "{{.Ports}}"])).toBe("127.0.0.1:18380-18381->80-81/tcp, [::1]:18390->90/tcp\n");
    const table = lines(await t.burrowOk(["ps", "-a", "--format", "table {{.Names}}\\t{{.State}}\\t{{.Labels}}"]));
    expect(table[0]).toMatch(/^NAMES {7}STATE {7}LABELS$/);
    expect(table.slice(1).sort()).toEqual([
      "db          running     map[app:db]",
      "done        exited      map[]",
      "web         running     map[app:web tier:front]",
    ]);
    expect(await t.burrowOk(["ps", "--filter", "name=web", "--format", "{{.ID}}"])).toBe(`${ids.web!.slice(0, 12)}\n`);
    expect(await t.burrowOk(["ps", "--filter", "name=web", "--no-trunc", "--format", "{{.ID}}"])).toBe(`${ids.web}\n`);
    expect(await t.burrowOk(["ps", "-l", "--format", "{{.Names}}"])).toBe("done\n");
    const dflt = lines(await t.burrowOk(["ps"]));
    expect(dflt[0]).toMatch(/^SANDBOX ID\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    expect(dflt.find((l) => l.includes("web"))).toContain("127.0.0.1:18380-18381->80-81/tcp, [::1]:18390->90/tcp");
    expect(await t.burrowOk(["ps", "--format", "table {{.Names}}", "--noheading", "--filter", "name=db"])).toBe("db\n");
  });

  test("ps --filter: same key ORs, different keys AND; status looks at every sandbox", async () => {
    const names = async (...f: string[]) => lines(await t.burrowOk(["ps", ...f.flatMap((x) => ["--filter", x]), "--format", "{{.Names}}"])).sort();
    expect(await names("name=web")).toEqual(["web"]);
    expect(await names("name=web", "name=db")).toEqual(["db", "web"]);
    expect(await names("label=app")).toEqual(["db", "web"]);
    expect(await names("label=app=web")).toEqual(["web"]);
    expect(await names("label=app", "name=db")).toEqual(["db"]);
    expect(await names("label=tier=back")).toEqual([]);
    expect(await names("status=exited")).toEqual(["done"]);
    expect(await names("status=running", "status=exited")).toEqual(["db", "done", "web"]);
    expect(await names(`id=${ids.db!.slice(0, 6)}`)).toEqual(["db"]);
    expect(lines(await t.burrowOk(["ps", "-q", "--filter", "name=^d", "-a"])).sort()).toEqual([ids.db!.slice(0, 12), ids.done!.slice(0, 12)].sort());
  });

  test("inspect: range over maps in key order, if, json, index", async () => {
    expect(await t.burrowOk(["inspect", "--format", "{{range $k, $v := .NetworkSettings.Ports}}{{$k}} {{end}}", "web"])).toBe("80/tcp 81/tcp 90/tcp \n");
    expect(await t.burrowOk(["inspect", "--format", "{{if .State.Running}}yes{{else}}no{{end}} {{.Config.Labels.app}}", "web", "done"])).toBe(
      "yes web\nno <no value>\n",
    );
    expect(await t.burrowOk(["inspect", "--format", "{{json .Config.Labels}}", "web"])).toBe('{"app":"web","tier":"front"}\n');
    expect(await t.burrowOk(["inspect", "--format", '{{(index (index .NetworkSettings.Ports "90/tcp") 0).HostIp}}', "web"])).toBe("::1\n");
    expect(await t.burrowOk(["inspect", "--format", "{{.Name}}\\t{{.State.ExitCode}}", "done"])).toBe("done\t0\n");
  });

  test("port: podman's lines (ranges unfolded, IPv6 bracketed) and templates", async () => {
    expect(await t.burrowOk(["port", "web"])).toBe("80/tcp -> 127.0.0.1:18380\n81/tcp -> 127.0.0.1:18381\n90/tcp -> [::1]:18390\n");
    expect(await t.burrowOk(["port", "web", "90"])).toBe("[::1]:18390\n");
    expect(await t.burrowOk(["port", "web", "--format", "{{.ContainerPort}}={{.HostPort}}"])).toBe("80=18380\n81=18381\n90=18390\n");
  });

  test("events: templates, table, --filter, --since/--until", async () => {
    const ev = (...a: string[]) => t.burrowOk(["events", "--stream=false", ...a]);
    const all = lines(await ev("--format", "{{.Type}} {{.Status}} {{.Name}}"));
    expect(all).toContain("sandbox create web");
    expect(all).toContain("sandbox died done");
    expect(lines(await ev("--filter", "sandbox=done", "--filter", "event=died", "--format", "{{.Status}} {{.Name}}"))).toEqual(["died done"]);
    expect(lines(await ev("--filter", "type=network", "--format", "{{.Type}}")).every((l) => l === "network")).toBe(true);
    expect(lines(await ev("--since", "1h", "--format", "{{.Name}}"))).toContain("web");
    expect(await ev("--until", "2000-01-01T00:00:00Z")).toBe("");
    expect(await ev("--since", String(Math.floor(Date.now() / 1000) + 3600))).toBe("");
    const table = lines(await ev("--filter", "sandbox=web", "--filter", "event=create", "--format", "table {{.Status}}\\t{{.Name}}"));
    expect(table).toEqual(["STATUS      NAME", "create      web"]);
  });

  test("stats: refreshes in place on a terminal (under script(1))", async () => {
    const r = await t.run(["timeout", "-k", "1", "3", "script", "-qfec", `${burrowBin()} stats --format '{{.Name}}' web`, "/dev/null"], { timeoutMs: 10000 });
    // One frame a second, each starting with cursor-home and clear-screen.
    expect(r.stdout.split("\x1b[H\x1b[2J").length - 1).toBeGreaterThanOrEqual(2);
    expect(r.stdout).toContain("web");
  }, 20000);

  test("stats: once when piped, templates", async () => {
    expect(await t.burrowOk(["stats", "--no-stream", "--format", "{{.Name}}", "web"])).toBe("web\n");
    // Not a terminal: one frame and exit, without --no-stream.
    const piped = await t.burrow(["stats", "--format", "table {{.Name}}\\t{{.PIDs}}", "web"], { timeoutMs: 10000 });
    expect(piped.timedOut).toBe(false);
    expect(lines(piped.stdout)).toEqual(["NAME        PIDS", "web         1"]);
  });

  test("bad templates, fields, filters and times: one line, exit 125, no partial output", async () => {
    await refused(t, ["ps", "--format", "{{.Names}} {{foo}}"], 'Error: template: :1: function "foo" not defined');
    await refused(t, ["ps", "-a", "--format", "{{.Nope}}"], `Error: template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type ps.Sandbox`);
    await refused(t, ["ps", "--format", "{{range .Names}}"], "Error: template: :1: unexpected EOF");
    await refused(t, ["inspect", "--format", "{{.State.Nope}}", "web"], "can't evaluate field Nope in type inspect.SandboxState");
    // Rows are rendered before anything is printed, so a failing field prints no partial line.
    await refused(t, ["inspect", "--format", "{{.Name}} {{.State.Pid.X}}", "web", "done"], "can't evaluate field X in type int");
    await refused(t, ["ps", "--filter", "bogus=1"], 'invalid filter "bogus" for "burrow ps": valid filters are name, id, status, network, label');
    await refused(t, ["ps", "--filter", "status=paused"], "valid statuses are created, running, exited");
    await refused(t, ["ps", "--filter", "noequals"], "use KEY=VALUE");
    await refused(t, ["events", "--stream=false", "--filter", "color=red"], 'invalid filter "color"');
    await refused(t, ["events", "--stream=false", "--since", "yesterday"], 'invalid --since "yesterday"');
    await refused(t, ["events", "--stream=false", "--until", "2026-13-01"], 'invalid --until "2026-13-01"');
    await refused(t, ["events", "--stream=false", "--format", "{{.Nope}}"], "can't evaluate field Nope in type events.Event");
    await refused(t, ["network", "ls", "--filter", "color=red"], 'invalid filter "color" for "burrow network ls"');
    await refused(t, ["network", "ls", "--format", "{{.Nope}}"], "can't evaluate field Nope in type network.Network");
    await refused(t, ["info", "--format", "{{.Nope}}"], "can't evaluate field Nope in type info.Info");
    await refused(t, ["port", "web", "--format", "{{printf}}"], "wrong number of args for printf");
    await refused(t, ["stats", "--no-stream", "--format", "{{.Nope}}"], "can't evaluate field Nope in type stats.Sandbox");
    await refused(t, ["run", "--label", "=x", "--", "true"], 'invalid --label "=x"');
  });

  test("network ls/inspect: templates, table, --filter name/driver/label", async () => {
    await t.burrowOk(["network", "create", "--label", "team=a", "fmt-one"]);
    await t.burrowOk(["network", "create", "fmt-two"]);
    try {
      expect(await t.burrowOk(["network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}"])).toBe("fmt-one\n");
      expect(await t.burrowOk(["network", "ls", "--filter", "name=^fmt-", "--format", "{{.Name}} {{.Driver}}"])).toBe("fmt-one bridge\nfmt-two bridge\n");
      expect(lines(await t.burrowOk(["network", "ls", "--filter", "driver=bridge", "--format", "{{.Name}}"]))).toContain("fmt-two");
      expect(await t.burrowOk(["network", "ls", "--filter", "driver=macvlan"])).toBe("NETWORK ID  NAME        DRIVER\n");
      const table = lines(await t.burrowOk(["network", "ls", "--filter", "name=fmt", "--format", "table {{.Name}}\\t{{.Labels}}"]));
      expect(table).toEqual(["NAME        LABELS", "fmt-one     map[team:a]", "fmt-two     map[]"]);
      expect(await t.burrowOk(["network", "ls", "-q", "--filter", "name=two"])).toBe("fmt-two\n");
      expect(await t.burrowOk(["network", "inspect", "--format", "{{.Name}} {{.Labels.team}} {{len .Subnets}} {{.Conflist.name}}", "fmt-one"])).toBe(
        "fmt-one a 1 fmt-one\n",
      );
      // ps and events filtered by network, on a sandbox attached to one.
      await t.burrowOk(["run", "-d", "--name", "onnet", "--network", "fmt-one", "--", "sleep", "60"]);
      expect(await t.burrowOk(["ps", "--filter", "network=fmt-one", "--format", "{{.Names}} {{.Networks}}"])).toBe("onnet fmt-one\n");
      expect(await t.burrowOk(["ps", "--filter", "network=fmt-two", "--format", "{{.Names}}"])).toBe("");
      expect(lines(await t.burrowOk(["events", "--stream=false", "--filter", "network=fmt-one", "--format", "{{.Type}} {{.Status}} {{.Name}}"]))).toEqual([
        "network create fmt-one",
        "sandbox create onnet",
      ]);
    } finally {
      await t.burrow(["rm", "-f", "onnet"]);
      await t.burrow(["network", "rm", "fmt-one", "fmt-two"]);
    }
  });

  test("info: every installed helper with a version, the default backend and why, id ranges, kernel features", async () => {
    const info = JSON.parse(await t.burrowOk(["info", "--format", "json"]));
    const found = new Map<string, { Version: string; Path: string }>(info.Helpers.map((h: { Name: string; Version: string; Path: string }) => [h.Name, h]));
    const installed: string[] = [];
    for (const name of ["slirp4netns", "pasta", "netavark", "aardvark-dns", "dnsmasq", "newuidmap", "newgidmap"]) {
      if (["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/libexec/podman", "/usr/lib/podman"].some((d) => existsSync(`${d}/${name}`)))
        installed.push(name);
    }
    for (const dir of ["/usr/local/libexec/cni", "/usr/libexec/cni", "/usr/local/lib/cni", "/usr/lib/cni", "/opt/cni/bin"]) {
      try {
        installed.push(...readdirSync(dir));
      } catch {}
    }
    expect(installed).toContain("slirp4netns");
    expect(installed).toContain("bridge");
    for (const name of new Set(installed)) {
      expect({ name, found: found.has(name) }).toEqual({ name, found: true });
      expect({ name, version: found.get(name)!.Version }).not.toEqual({ name, version: "unknown" });
      expect(found.get(name)!.Version).toMatch(/\d/);
    }
    expect(info.Host.Rootless).toBe(true);
    expect(info.Network.Backend).toBe("slirp4netns");
    expect(info.Network.Why).toContain("rootless");
    expect(info.Host.IdMappings.Subuid.Count).toBeGreaterThan(0);
    // The session maps the user to 0 and the subuid range from 1 (podman's layout).
    expect(info.Host.IdMappings.UidMap[0]).toEqual({ ContainerID: 0, HostID: info.Host.Uid, Size: 1 });
    expect(info.Host.IdMappings.UidMap[1]).toEqual({ ContainerID: 1, HostID: info.Host.IdMappings.Subuid.Start, Size: info.Host.IdMappings.Subuid.Count });
    expect(info.Host.KernelFeatures.find((f: { Name: string }) => f.Name === "user namespaces").Available).toBe(true);
    expect(await t.burrowOk(["info", "--format", "{{.Host.Rootless}} {{.Network.Backend}}"])).toBe("true slirp4netns\n");
    expect(await t.burrowOk(["info", "--format", '{{range .Helpers}}{{if eq .Name "slirp4netns"}}{{.Version}}{{end}}{{end}}'])).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  test("no escape code in any command's output when stdout is not a terminal", async () => {
    const commands = [
      ["ps", "-a"],
      ["ps", "--format", "table {{.Names}}\\t{{.Status}}"],
      ["inspect", "web"],
      ["port", "web"],
      ["network", "ls"],
      ["info"],
      ["events", "--stream=false"],
      ["stats", "--no-stream"],
      ["logs", "db"],
      ["--help"],
      ["network"],
      ["nosuchcommand"],
      ["ps", "--filter", "x=1"],
      ["run", "--name", "esc", "--rm", "--network", "none", "--", "true"],
    ];
    for (const args of commands) {
      const r = await t.burrow(args, { env: { TERM: "xterm-256color", FORCE_COLOR: undefined } });
      expect({ args, stdout: r.stdout.includes(ESC), stderr: r.stderr.includes(ESC) }).toEqual({ args, stdout: false, stderr: false });
    }
  });
});

describe.skipIf(!!why)("--help of every command: a one-line summary, described flags, examples, no colour when piped", () => {
  let t: BurrowContext;
  beforeAll(async () => {
    t = await burrowContext("rootless");
  });
  afterAll(async () => {
    await t.dispose();
  });
  test("every command and network subcommand", async () => {
    const paths: string[][] = [[]];
    for (const [name, load] of Object.entries(main.subCommands as Record<string, () => Promise<{ subCommands?: Record<string, unknown> }>>)) {
      paths.push([name]);
      const cmd = await load();
      for (const sub of Object.keys(cmd.subCommands ?? {})) paths.push([name, sub]);
    }
    expect(paths.length).toBeGreaterThan(20);
    let flagLines = 0;
    for (const path of paths) {
      const r = await t.burrow([...path, "--help"], { env: { TERM: "xterm-256color" } });
      const out = r.stdout;
      expect({ path, code: r.code, esc: out.includes(ESC) }).toEqual({ path, code: 0, esc: false });
      // citty's first line: "SUMMARY (burrow NAME vX)".
      expect({ path, summary: /^\S.*\(burrow.*\)$/.test(out.split("\n")[0]!) }).toEqual({ path, summary: true });
      expect({ path, examples: out.includes("\nEXAMPLES\n") && (EXAMPLES[path.join(" ")]?.length ?? 0) > 0 }).toEqual({ path, examples: true });
      // Every flag line has a description after the flag.
      const options = out.split("\nOPTIONS\n")[1]?.split(/\n[A-Z]+\n/)[0] ?? "";
      flagLines += lines(options).length;
      for (const l of lines(options)) expect({ path, line: l, described: /^\s+-\S.*\s{2,}\S/.test(l) }).toEqual({ path, line: l, described: true });
    }
    expect(flagLines).toBeGreaterThan(40);
  });
  test("on a terminal (script(1)) help is coloured, unless NO_COLOR is set", async () => {
    const onTty = (env: Record<string, string | undefined>) =>
      t.run(["script", "-qfec", `${burrowBin()} ps --help`, "/dev/null"], { env: { TERM: "xterm-256color", ...env }, timeoutMs: 10000 });
    const coloured = await onTty({ NO_COLOR: undefined });
    expect(coloured.stdout).toContain("EXAMPLES");
    expect(coloured.stdout).toContain(ESC);
    const plain = await onTty({ NO_COLOR: "1" });
    expect(plain.stdout).toContain("EXAMPLES");
    expect(plain.stdout).not.toContain(ESC);
  });
});
