// IPv6 published ports (issue 15 item 4), rootless, end to end: the
// builtin forwarder listens on IPv6 for `-p [::1]:P`, `-p [::]:P` and plain
// `-p P` (dual-stack), and reaches a sandbox that has IPv6 (slirp4netns
// enable_ipv6) over IPv6; one without IPv6 is still served, over IPv4.
// pasta forwards IPv6 itself. The server in the sandbox answers each
// connection with the peer address it sees.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect, isIPv6 } from "node:net";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { describeWhen, firstMissing } from "../helpers/requirements.ts";
import { until } from "../helpers/until.ts";

const hostIPv6 = () => {
  try {
    return readFileSync("/proc/net/if_inet6", "utf8").includes("00000000000000000000000000000001") ? null : "the host has no ::1";
  } catch {
    return "the host has no IPv6";
  }
};
const why = firstMissing(integrationUnavailable(), hostIPv6);
if (why) console.warn(`skipping the IPv6 port tests: ${why}`);

let nextPort = 30000 + Math.floor(Math.random() * 1000);
const hostPort = () => nextPort++;

/** Answers each connection on [::]:7000 (IPv4 too) with the peer address it sees. */
const PEER_SERVER = 'Bun.listen({ hostname: "::", port: 7000, socket: { open(s) { s.end(`${s.remoteAddress}\\n`); }, data() {} } });';

/** The line the server sends through host:port, or throws when the connection closes without one. */
function peerThrough(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let got = "";
    s.on("data", (d) => {
      got += d.toString();
    });
    s.on("close", () => (got.endsWith("\n") ? resolve(got.trim()) : reject(new Error(`no answer through ${host}:${port}`))));
    s.on("error", reject);
  });
}
const isRealIPv6 = (a: string) => isIPv6(a) && !a.toLowerCase().startsWith("::ffff:");

describeWhen(why)("IPv6 published ports (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(() => t.dispose());

  const serve = async (network: string, publish: string[]) =>
    (await t.burrowOk(["run", "-d", "--network", network, ...publish.flatMap((p) => ["-p", p]), "--", process.execPath, "-e", PEER_SERVER])).trim();

  test("slirp4netns with enable_ipv6: [::1] reaches the sandbox over IPv6, IPv4 clients over IPv4", async () => {
    const [v6, plain] = [hostPort(), hostPort()];
    const id = await serve("slirp4netns:enable_ipv6=true", [`[::1]:${v6}:7000`, `${plain}:7000`]);
    // slirp4netns's IPv6 address is SLAAC (fd00::/64), usable once its
    // duplicate address detection is over; until then IPv6 clients go over IPv4.
    const peer = await until(
      async () => {
        const p = await peerThrough("::1", v6);
        return p.startsWith("fd00:") ? p : null;
      },
      10_000,
      "the server behind [::1] to see an fd00::/64 peer",
    );
    // The forwarder connects from inside the sandbox: the peer is the sandbox's own address.
    const own = (await t.burrowOk(["exec", id, "ip", "-6", "-o", "addr", "show", "scope", "global"])).match(/inet6 (fd00:[0-9a-f:]+)\//)?.[1];
    expect(peer).toBe(own!);
    // Plain -p is dual-stack: IPv6 clients over IPv6, IPv4 clients over IPv4.
    expect(await peerThrough("::1", plain)).toBe(own!);
    expect(await peerThrough("127.0.0.1", plain)).toBe("::ffff:10.0.2.100");
    await t.burrowOk(["rm", "-f", id]);
  });

  test("a sandbox without IPv6: -p [::1] still serves, over IPv4", async () => {
    const port = hostPort();
    const id = await serve("slirp4netns", [`[::1]:${port}:7000`]);
    expect(await until(() => peerThrough("::1", port), 10_000, "the server behind [::1]")).toBe("::ffff:10.0.2.100");
    await t.burrowOk(["rm", "-f", id]);
  });

  test("plain -p and [::] listen on IPv6 and IPv4; port and ps print IPv6 in brackets", async () => {
    const [plain, any] = [hostPort(), hostPort()];
    const id = await serve("slirp4netns", [`${plain}:7000`, `[::]:${any}:7000`]);
    for (const port of [plain, any]) {
      expect(await until(() => peerThrough("::1", port), 10_000, `the server behind [::1]:${port}`)).toBe("::ffff:10.0.2.100");
      expect(await peerThrough("127.0.0.1", port)).toBe("::ffff:10.0.2.100");
    }
    expect(await t.burrowOk(["port", id])).toBe(`7000/tcp -> 0.0.0.0:${plain}\n7000/tcp -> [::]:${any}\n`);
    expect((await t.burrowOk(["ps", "--format", "{{.Ports}}"])).trim()).toBe(`0.0.0.0:${plain}->7000/tcp, [::]:${any}->7000/tcp`);
    await t.burrowOk(["rm", "-f", id]);
  });

  test("pasta: [::1] reaches the sandbox over IPv6", async () => {
    const port = hostPort();
    const id = await serve("pasta", [`[::1]:${port}:7000`]);
    const peer = await until(() => peerThrough("::1", port), 10_000, "the server behind [::1]");
    expect(isRealIPv6(peer)).toBe(true);
    expect(await t.burrowOk(["port", id])).toBe(`7000/tcp -> [::1]:${port}\n`);
    await t.burrowOk(["rm", "-f", id]);
  });
});

describeWhen(why)("IPv6 published ports: a port taken on IPv6 only (rootless)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootless");
  });
  afterEach(() => t.dispose());

  for (const network of ["slirp4netns", "pasta"]) {
    test(`${network}: plain -p of a port another program holds on [::1] only is refused with the port named, leaving nothing`, async () => {
      const port = hostPort();
      const holder = Bun.listen({ hostname: "::1", port, socket: { data() {} } });
      try {
        const r = await t.burrow(["run", "--rm", "--network", network, "-p", `${port}:80`, "--", "true"]);
        expect(r.code).toBe(125);
        expect(r.stderr.trim()).toBe(`Error: host port ${port}/tcp is already in use on 0.0.0.0`);
        expect(await t.burrowOk(["ps", "-aq"])).toBe("");
      } finally {
        holder.stop(true);
      }
    });
  }
});
