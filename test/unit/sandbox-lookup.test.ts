// Finding a sandbox by reference (src/state/sandboxes.ts find): podman's
// order, exact id, then exact name, then a unique id prefix. Rows whose
// name has an id's shape can only come from a database made before such
// names were refused (issue 19 item 9); they must not hide an id.
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { openState } from "../../src/state/db.ts";
import { type Sandbox, SandboxStore } from "../../src/state/sandboxes.ts";
import { ID_SHAPED_NAME } from "../../src/protocol.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store(): SandboxStore {
  const dir = mkdtempSync(`${tmpdir()}/burrow-lookup-`);
  dirs.push(dir);
  return new SandboxStore(openState(dir));
}

function row(id: string, name: string): Sandbox {
  return {
    id,
    name,
    createdAt: new Date().toISOString(),
    status: "exited",
    pid: null,
    pidStart: null,
    exitCode: 0,
    startedAt: null,
    finishedAt: null,
    bootId: "b",
    session: "s",
    spec: { name, hostname: name, network: "none", argv: ["true"] } as Sandbox["spec"],
    runtime: { pins: null, ino: null, network: "none" },
  };
}

const victimId = `abc${"1".repeat(61)}`;
const impostorId = `def${"2".repeat(61)}`;

test("an exact id wins over a name equal to it, whichever row came first", () => {
  const s = store();
  s.insert(row(impostorId, victimId));
  s.insert(row(victimId, "victim"));
  expect(s.find(victimId).name).toBe("victim");
});

test("an exact name wins over an id prefix; a prefix finds the one id it starts", () => {
  const s = store();
  s.insert(row(victimId, "victim"));
  s.insert(row(impostorId, "abc"));
  expect(s.find("abc").id).toBe(impostorId);
  expect(s.find("abc1").id).toBe(victimId);
  expect(s.find("def2").id).toBe(impostorId);
});

test("id-shaped names: 12 to 64 lowercase hex digits", () => {
  for (const name of [victimId, victimId.slice(0, 12), "0".repeat(12)]) expect(ID_SHAPED_NAME.test(name)).toBe(true);
  for (const name of ["0".repeat(11), "0".repeat(65), "0123456789AB", "0123456789ag", "web"]) expect(ID_SHAPED_NAME.test(name)).toBe(false);
});
