// The command tree from the citty definitions, the completions answered from
// it, and the man pages rendered from it (one source for all three).
import { describe, expect, test } from "bun:test";
import { allCommands, commandTree } from "../../src/cli/_tree.ts";
import { complete, completionScript, type NameSource } from "../../src/cli/completion.ts";
import { manPage, manPages, pageName } from "../../scripts/packaging/man.ts";
import { main } from "../../src/cli/index.ts";

const tree = await commandTree();
const names: NameSource & { asked: string[] } = {
  asked: [],
  async sandboxes() {
    this.asked.push("sandboxes");
    return ["web", "worker", "db"];
  },
  async networks() {
    this.asked.push("networks");
    return ["front", "back"];
  },
  executables: (prefix) => ["busybox", "bash", "cat"].filter((x) => x.startsWith(prefix)),
};
const c = (line: string) => complete(tree, line.split(" "), names);

describe("the command tree", () => {
  test("every command of src/cli/index.ts, with its flags and aliases", () => {
    expect(tree.subcommands.map((s) => s.name)).toEqual(Object.keys(main.subCommands as object));
    const run = tree.subcommands.find((s) => s.name === "run")!;
    expect(run.flags.find((f) => f.name === "publish")).toEqual({
      name: "publish",
      aliases: ["p"],
      takesValue: true,
      description: expect.stringContaining("Publish a port"),
    });
    expect(run.flags.find((f) => f.name === "rm")!.takesValue).toBe(false);
    const network = tree.subcommands.find((s) => s.name === "network")!;
    expect(network.subcommands.find((s) => s.name === "ls")!.aliases).toEqual(["list"]);
    expect(allCommands(tree).map((x) => x.path)).toContain("network create");
  });
});

describe("completion", () => {
  test("commands, subcommands and flags", async () => {
    expect(await c("burrow ru")).toEqual(["run"]);
    expect(await c("burrow ")).toContain("network");
    expect(await c("burrow network c")).toEqual(["connect", "create"]);
    expect(await c("burrow network l")).toEqual(["list", "ls"]);
    expect(await c("burrow run --n")).toEqual(["--name", "--net", "--network", "--network-alias"]);
    expect(await c("burrow run -")).toContain("-p");
    expect(await c("burrow ps --format ")).toEqual(["json"]);
    expect(await c("burrow completion ")).toEqual(["bash", "fish", "zsh"]);
    expect(names.asked).toEqual([]);
  });

  test("sandbox and network names, from the name source", async () => {
    expect(await c("burrow stop w")).toEqual(["web", "worker"]);
    expect(await c("burrow rm -f d")).toEqual(["db"]);
    expect(await c("burrow start w")).toEqual(["web", "worker"]);
    expect(await c("burrow restart -t 3 d")).toEqual(["db"]);
    expect(await c("burrow wait ")).toEqual(["db", "web", "worker"]);
    expect(await c("burrow generate systemd w")).toEqual(["web", "worker"]);
    expect(await c("burrow network rm ")).toEqual(["back", "front"]);
    expect(await c("burrow network connect f")).toEqual(["front"]);
    expect(await c("burrow network connect front w")).toEqual(["web", "worker"]);
    expect(await c("burrow run --network ")).toEqual(["back", "bridge", "container:", "front", "host", "none", "ns:", "pasta", "slirp4netns"]);
  });

  test("the command of run is the user's: executables, then nothing (files by the shell)", async () => {
    expect(await c("burrow run --rm b")).toEqual(["busybox", "bash"]);
    expect(await c("burrow run -p 8080:80 -- c")).toEqual(["cat"]);
    expect(await c("burrow run --name x busybox h")).toEqual([]);
    // A flag's value is not the command: -p takes the next word.
    expect(await c("burrow run -p 8080:80 b")).toEqual(["busybox", "bash"]);
  });

  test("the scripts call back into the same binary", () => {
    expect(completionScript("bash")).toContain('"${words[0]}" completion __complete -- "${words[@]}"');
    expect(completionScript("bash")).toContain("complete -o default -F _burrow burrow");
    expect(completionScript("zsh")).toStartWith("#compdef burrow\n");
    expect(completionScript("fish")).toContain("complete -c burrow -f -a '(__burrow_complete)'");
  });

  test("bash: the script completes burrow ru<TAB> with this source tree", () => {
    const bin = `${import.meta.dir}/../../node_modules/.bin/bun`;
    const main = `${import.meta.dir}/../../src/main.ts`;
    // The script runs "${words[0]}": a one-line wrapper named burrow stands in for the binary.
    const script = `burrow() { "${bin}" "${main}" "$@"; }\n${completionScript("bash")}\nCOMP_LINE="burrow ru"; COMP_POINT=\${#COMP_LINE}; _burrow; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = Bun.spawnSync(["bash", "-c", script], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, XDG_RUNTIME_DIR: "/nonexistent-burrow-test" },
    });
    expect(r.stdout.toString()).toBe("run\n");
  });
});

describe("man pages", () => {
  const pages = manPages(tree, "9.9.9", "2026-01-02");
  test("burrow(1) and one page per command, named after the command path", () => {
    const files = pages.map(([f]) => f);
    expect(files).toContain("burrow.1");
    expect(files).toContain("burrow-run.1");
    expect(files).toContain("burrow-network-create.1");
    expect(files).toHaveLength(1 + allCommands(tree).length);
    expect(pageName(tree.subcommands.find((s) => s.name === "run")!)).toBe("burrow-run");
  });

  test("each flag of the definition, roff-escaped; groff renders without a warning", () => {
    const run = tree.subcommands.find((s) => s.name === "run")!;
    const text = manPage(run, tree, "9.9.9", "2026-01-02");
    expect(text).toContain('.TH BURROW-RUN 1 "2026-01-02" "burrow 9.9.9" "User Commands"');
    for (const f of run.flags) expect(text).toContain(`\\fB\\-\\-${f.name.replace(/-/g, "\\-")}\\fR`);
    const r = Bun.spawnSync(["groff", "-man", "-Tutf8", "-ww", "-z"], { stdin: Buffer.from(text), stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  });
});
