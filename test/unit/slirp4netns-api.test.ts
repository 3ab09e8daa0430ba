// The API client's protocol against a stand-in server on a unix socket.
// (test/integration/slirp4netns-lib.test.ts runs it against slirp4netns.)
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addHostFwd, hostFwdOf, listHostFwd, removeHostFwd, slirp4netnsRequest } from "../../src/net/slirp4netns/api.ts";

const dir = mkdtempSync(join(tmpdir(), "burrow-api-"));
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A server that reads each request to EOF (as slirp4netns does), records it and answers with `reply(request)`. */
async function fakeApi(reply: (req: any) => string | null): Promise<{ path: string; requests: any[] }> {
  const path = join(dir, `api-${servers.length}.sock`);
  const requests: any[] = [];
  const srv = createServer({ allowHalfOpen: true }, (sock) => {
    const chunks: Buffer[] = [];
    sock.on("data", (b) => chunks.push(Buffer.from(b)));
    sock.on("end", () => {
      const req = JSON.parse(Buffer.concat(chunks).toString());
      requests.push(req);
      const r = reply(req);
      if (r === null) return; // never answer
      sock.end(r);
    });
  });
  servers.push(srv);
  await new Promise<void>((resolve) => srv.listen(path, resolve));
  return { path, requests };
}

describe("slirp4netns API client", () => {
  test("add, list, remove: one half-closed request per call", async () => {
    const api = await fakeApi((req) => {
      if (req.execute === "add_hostfwd") return JSON.stringify({ return: { id: 7 } });
      if (req.execute === "list_hostfwd")
        return JSON.stringify({
          entries: [{ id: 7, ...req.arguments, proto: "tcp", host_addr: "0.0.0.0", host_port: 8080, guest_addr: "10.0.2.100", guest_port: 80 }],
        });
      return JSON.stringify({ return: {} });
    });
    const fwd = hostFwdOf({ hostIp: "", hostPort: 8080, containerPort: 80, protocol: "tcp" }, "10.0.2.100");
    expect(await addHostFwd(api.path, fwd)).toBe(7);
    expect(await listHostFwd(api.path)).toEqual([{ id: 7, proto: "tcp", host_addr: "0.0.0.0", host_port: 8080, guest_addr: "10.0.2.100", guest_port: 80 }]);
    await removeHostFwd(api.path, 7);
    expect(api.requests).toEqual([
      { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "0.0.0.0", host_port: 8080, guest_addr: "10.0.2.100", guest_port: 80 } },
      { execute: "list_hostfwd" },
      { execute: "remove_hostfwd", arguments: { id: 7 } },
    ]);
  });

  test("slirp4netns's error text comes through", async () => {
    const api = await fakeApi(() => JSON.stringify({ error: { desc: "bad request: add_hostfwd: slirp_add_hostfwd failed" } }));
    await expect(addHostFwd(api.path, { proto: "udp", host_addr: "127.0.0.1", host_port: 53, guest_addr: "10.0.2.100", guest_port: 53 })).rejects.toThrow(
      "slirp4netns refused add_hostfwd: bad request: add_hostfwd: slirp_add_hostfwd failed",
    );
  });

  test("garbage, odd shapes and missing ids", async () => {
    const notJson = await fakeApi(() => "hello");
    await expect(slirp4netnsRequest(notJson.path, "list_hostfwd")).rejects.toThrow(/list_hostfwd: reply is not JSON: "hello"/);
    const odd = await fakeApi(() => JSON.stringify({ what: 1 }));
    await expect(slirp4netnsRequest(odd.path, "list_hostfwd")).rejects.toThrow(/list_hostfwd: unexpected reply \{"what":1\}/);
    const noId = await fakeApi(() => JSON.stringify({ return: {} }));
    await expect(addHostFwd(noId.path, { proto: "tcp", host_addr: "0.0.0.0", host_port: 1, guest_addr: "10.0.2.100", guest_port: 1 })).rejects.toThrow(
      /reply has no id/,
    );
  });

  test("arguments are validated before sending", async () => {
    await expect(
      addHostFwd(join(dir, "unused.sock"), { proto: "sctp" as "tcp", host_addr: "0.0.0.0", host_port: 1, guest_addr: "x", guest_port: 1 }),
    ).rejects.toThrow(/invalid port forward/);
    expect(() => hostFwdOf({ hostIp: "", hostPort: 0, containerPort: 80, protocol: "tcp" }, "10.0.2.100")).toThrow(
      /cannot pick a random host port for container port 80\/tcp/,
    );
  });
});
