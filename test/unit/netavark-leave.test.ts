// The order of a sandbox's leave from netavark networks (src/net/netavark/
// backend.ts `leave`), with netavark and nsenter replaced by a recorder:
// who deletes its interface ahead, who is torn down by netavark whole, and
// that a network's last teardown comes after the others' (netavark removes
// the bridge and the network's rules only then). The real programs run in
// test/integration/netavark.test.ts.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { NetavarkNetworking } from "../../src/net/netavark/backend.ts";
import { buildSetupOptions, type NetavarkRun } from "../../src/net/netavark/run.ts";
import { defaultNetworkConfig } from "../../src/net/netavark/networks-dir.ts";
import type { Paths } from "../../src/paths.ts";
import type { Sandbox } from "../../src/state/sandboxes.ts";

// podman's default network's file, renamed: the recorder reads nothing in it.
const network = defaultNetworkConfig({ name: "lv", subnet: "10.89.64.0/24", now: new Date(0) });

const options = (id: string) =>
  buildSetupOptions({
    containerId: id,
    containerName: id,
    attachments: [{ network, interfaceName: "eth0", staticIps: [`10.89.64.${id.charCodeAt(0) % 200}`] }],
  });

const row = (id: string) =>
  ({
    id,
    runtime: {
      network: "netavark",
      backend: { rootless: false, attachments: [{ network: "lv", ifName: "eth0", options: options(id), status: {}, aliases: [] }] },
    },
  }) as unknown as Sandbox;

const GONE = '{"error":"failed to delete container veth eth0: Netlink error: No such device (os error 19)"}';

let dir: string;
let rows: Sandbox[];
let events: string[];
/** Sandboxes whose interface the recorder's nsenter deleted. */
let unlinked: Set<string>;
/** How each fake program answers, by the sandbox it is for. */
let unlinkAnswer: (id: string) => Promise<NetavarkRun>;
let teardownAnswer: (id: string) => NetavarkRun;

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function networking(): NetavarkNetworking {
  const paths: Paths = { rootless: false, uid: 0, runtimeDir: dir, stateDir: dir, cniConfigDir: dir, networksDir: dir, netavarkDir: dir };
  const nv = new NetavarkNetworking({
    paths,
    sandboxes: () => rows,
    shared: null,
    spawn: async (argv, stdin) => {
      if (argv[0] === "nsenter") {
        const id = /--net=\/pins\/(\w+)\/net/.exec(argv[1]!)![1]!;
        events.push(`unlink ${id}`);
        const r = await unlinkAnswer(id);
        if (r.code === 0) unlinked.add(id);
        events.push(`unlinked ${id}`);
        return r;
      }
      const id = (JSON.parse(stdin) as { container_id: string }).container_id;
      events.push(`${argv.includes("teardown") ? "teardown" : argv[0]} ${id}`);
      await wait(5);
      return teardownAnswer(id);
    },
  });
  // No netavark binary needed: the recorder answers for it.
  (nv as unknown as { found: unknown }).found = { binary: "/netavark", configDir: dir, rootless: false };
  return nv;
}

beforeEach(() => {
  dir = mkdtempSync(`${tmpdir()}/burrow-leave-`);
  events = [];
  unlinked = new Set();
  unlinkAnswer = async () => {
    await wait(30);
    return { code: 0, stdout: "", stderr: "" };
  };
  teardownAnswer = (id) => (unlinked.has(id) ? { code: 1, stdout: GONE, stderr: "" } : { code: 0, stdout: "", stderr: "" });
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("a leave from a netavark network", () => {
  test("while another sandbox stays: its interface is deleted ahead, and netavark's 'No such device' for it is no failure", async () => {
    rows = [row("a"), row("b")];
    await networking().leave("a", "/pins/a/net", options("a"));
    expect(events).toEqual(["unlink a", "unlinked a", "teardown a"]);
  });

  test("the network's last sandbox: netavark's teardown whole, nothing deleted ahead", async () => {
    rows = [row("a")];
    await networking().leave("a", "/pins/a/net", options("a"));
    expect(events).toEqual(["teardown a"]);
  });

  test("two leaving at once: one deletes ahead, the other is the last, and its teardown comes after the first one's", async () => {
    rows = [row("a"), row("b")];
    const nv = networking();
    await Promise.all([nv.leave("a", "/pins/a/net", options("a")), nv.leave("b", "/pins/b/net", options("b"))]);
    // b saw a leaving: without waiting, its teardown (5 ms) would have come before a's deletion (30 ms) ended.
    expect(events).toEqual(["unlink a", "unlinked a", "teardown a", "teardown b"]);
  });

  test("any other teardown on the network (a disconnect, a rollback) waits for a deletion under way before netavark counts the bridge's ports", async () => {
    rows = [row("a"), row("b")];
    const nv = networking();
    await Promise.all([nv.leave("a", "/pins/a/net", options("a")), nv.detach("b", "/pins/b/net", options("b"))]);
    expect(events).toEqual(["unlink a", "unlinked a", "teardown b", "teardown a"]);
  });

  test("a deletion ahead that fails leaves the interface to netavark, whose teardown must then succeed", async () => {
    rows = [row("a"), row("b")];
    unlinkAnswer = async () => ({ code: 1, stdout: "", stderr: "nsenter: cannot open /pins/a/net: No such file or directory" });
    await networking().leave("a", "/pins/a/net", options("a"));
    expect(events).toEqual(["unlink a", "unlinked a", "teardown a"]);
    teardownAnswer = () => ({ code: 1, stdout: GONE, stderr: "" });
    events = [];
    // Nothing was deleted ahead: the same answer is now a failure.
    await expect(networking().leave("a", "/pins/a/net", options("a"))).rejects.toThrow("No such device");
  });

  test("after a deletion ahead, any other failure of netavark's teardown is still one", async () => {
    rows = [row("a"), row("b")];
    teardownAnswer = () => ({ code: 1, stdout: '{"error":"failed to remove the dns entry: Permission denied (os error 13)"}', stderr: "" });
    await expect(networking().leave("a", "/pins/a/net", options("a"))).rejects.toThrow("Permission denied");
    expect(events).toEqual(["unlink a", "unlinked a", "teardown a"]);
  });
});
