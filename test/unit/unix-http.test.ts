// The CLI's HTTP/1.1 client over the control socket (src/client/unix-http.ts).
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { MalformedReply, parseReply, postUnix } from "../../src/client/unix-http.ts";
import { connectUnix } from "../../src/sys/unix-stream.ts";
import { POLLHUP, POLLIN, pollOnce } from "../../src/sys/unix-socket.ts";

const dir = mkdtempSync(`${tmpdir()}/unix-http-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("parseReply takes the body by Content-Length, or by chunks", () => {
  expect(parseReply(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"a":1}'))).toEqual({ status: 200, text: '{"a":1}' });
  expect(parseReply(Buffer.from('HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4;x=y\r\n":1}\r\n0\r\n\r\n'))).toEqual({
    status: 400,
    text: '{"a":1}',
  });
  expect(parseReply(Buffer.from("HTTP/1.1 204 No Content\r\n\r\n"))).toEqual({ status: 204, text: "" });
  // No reason phrase; header names in any case, with spaces around the value; a coding list.
  expect(parseReply(Buffer.from("HTTP/1.0 201\r\ncontent-LENGTH:  2 \r\n\r\n{}xx"))).toEqual({ status: 201, text: "{}" });
  expect(parseReply(Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))).toEqual({ status: 200, text: "{}" });
});

test("parseReply refuses what is not a whole HTTP reply", () => {
  for (const raw of [
    "",
    "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n",
    "SSH-2.0-OpenSSH\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{}",
    "HTTP/2 200 OK\r\n\r\n",
    "HTTP/1.1 20x OK\r\n\r\n",
    "HTTP/1.1 2000 OK\r\n\r\n",
    "HTTP/1.1  200 OK\r\n\r\n",
  ])
    expect(() => parseReply(Buffer.from(raw))).toThrow(MalformedReply);
});

test("postUnix against Bun.serve: status and body, a large request body, a missing socket", async () => {
  const sock = `${dir}/s.sock`;
  const server = Bun.serve({
    unix: sock,
    fetch: async (req) => Response.json({ path: new URL(req.url).pathname, length: (await req.text()).length }, { status: 201 }),
  });
  try {
    const big = JSON.stringify({ env: "x".repeat(3 << 20) });
    const r = await postUnix(sock, "/create", big);
    expect(r.status).toBe(201);
    expect(JSON.parse(r.text)).toEqual({ path: "/create", length: big.length });
    await expect(postUnix(`${dir}/none.sock`, "/ping", "{}")).rejects.toBeDefined();
    const aborted = new AbortController();
    aborted.abort(new Error("gave up"));
    await expect(postUnix(sock, "/ping", "{}", { signal: aborted.signal })).rejects.toThrow("gave up");
  } finally {
    server.stop(true);
  }
});

test("postUnix's onSent runs once, when the whole request is in the socket, before the reply", async () => {
  const sock = `${dir}/sent.sock`;
  const events: string[] = [];
  let answer!: () => void;
  const server = Bun.serve({
    unix: sock,
    fetch: async (req) => {
      const body = await req.text();
      events.push(`server read ${body.length}`);
      // The reply waits until the test lets it go: onSent must not wait for it.
      await new Promise<void>((r) => (answer = r));
      return Response.json({ ok: true });
    },
  });
  try {
    const big = JSON.stringify({ env: "x".repeat(3 << 20) });
    const reply = postUnix(sock, "/create", big, { onSent: () => events.push("sent") });
    while (!events.includes("sent")) await Bun.sleep(1);
    // Nothing answered yet, and the server has the whole body.
    while (!events.some((e) => e.startsWith("server read"))) await Bun.sleep(1);
    expect(events).toContain(`server read ${big.length}`);
    answer();
    expect((await reply).status).toBe(200);
    expect(events.filter((e) => e === "sent")).toHaveLength(1);
    // A request that never goes out never says it did.
    let never = false;
    await expect(postUnix(`${dir}/none.sock`, "/ping", "{}", { onSent: () => (never = true) })).rejects.toBeDefined();
    expect(never).toBe(false);
  } finally {
    server.stop(true);
  }
});

test("postUnix's onSent waits for a large request's last byte: not while the daemon reads none of it", async () => {
  const sock = `${dir}/slow.sock`;
  let conn: Socket | null = null;
  const server = createServer({ pauseOnConnect: true }, (c) => {
    conn = c;
  });
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const big = JSON.stringify({ env: "x".repeat(3 << 20) });
    let sent = false;
    const reply = postUnix(sock, "/create", big, { onSent: () => (sent = true) });
    while (!conn) await Bun.sleep(1);
    await Bun.sleep(100);
    // Far more than a socket buffer, and nothing read: not sent yet.
    expect(sent).toBe(false);
    let got = 0;
    const c = conn as Socket;
    c.on("data", (d: Buffer) => {
      got += d.length;
      if (got >= big.length && !c.writableEnded) c.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    });
    c.resume();
    expect((await reply).status).toBe(200);
    expect(sent).toBe(true);
  } finally {
    server.close();
  }
});

test("postUnix writes a request that fits the socket before it returns, over the connection its `connect` made; what `connect` throws is the call's error", async () => {
  const sock = `${dir}/now.sock`;
  const server = Bun.serve({ unix: sock, fetch: async (req) => Response.json({ body: await req.text() }) });
  try {
    const made: number[] = [];
    let sent = false;
    const reply = postUnix(sock, "/ping", '{"a":1}', {
      connect: (path) => {
        const fd = connectUnix(path);
        made.push(fd);
        return fd;
      },
      onSent: () => (sent = true),
    });
    // Written at once: not a turn of the event loop later, when Bun's socket opens.
    expect(sent).toBe(true);
    expect(made).toHaveLength(1);
    expect(JSON.parse((await reply).text)).toEqual({ body: '{"a":1}' });
    // Bun took the fd over and closed it with the connection.
    expect(existsSync(`/proc/self/fd/${made[0]}`)).toBe(false);
    let never = false;
    const refused = new Error("not that listener");
    await expect(
      postUnix(sock, "/ping", "{}", {
        connect: () => {
          throw refused;
        },
        onSent: () => (never = true),
      }),
    ).rejects.toBe(refused);
    expect(never).toBe(false);
  } finally {
    server.stop(true);
  }
});

test("postUnix over a connection the daemon closed before the request: the send's error, and the connection closed, not left to anyone", async () => {
  const sock = `${dir}/closed.sock`;
  const server = createServer((c) => c.destroy());
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const fd = connectUnix(sock);
    // The server has closed its end: the first send gets EPIPE (no SIGPIPE).
    while (!(pollOnce(fd, POLLIN, 0) & (POLLIN | POLLHUP))) await Bun.sleep(1);
    let sent = false;
    await expect(postUnix(sock, "/ping", "{}", { connect: () => fd, onSent: () => (sent = true) })).rejects.toThrow(/EPIPE|ECONNRESET/);
    expect(sent).toBe(false);
    expect(existsSync(`/proc/self/fd/${fd}`)).toBe(false);
  } finally {
    server.close();
  }
});
