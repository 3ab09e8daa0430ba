// Egress policy's wiring (issue 18), end to end from the built binary,
// rootless and rootful: the flags reach the spec, refused combinations
// leave nothing, the ruleset is loaded in the sandbox's own netns before
// its command runs and holds there (after restart, start, and kill -9 of
// the daemon), resolv.conf names burrow's resolver alone, inspect shows the
// policy. No DNS is needed: the proofs are sends to documentation addresses
// (a UDP send a rule drops fails at once with EPERM; a TCP connect it
// refuses fails at once with ECONNREFUSED), and the table itself, read as
// root through the command's /proc/PID/ns/net. The full "test internet"
// suite (names, CNAMEs, rebinding, ICMP) is test/integration/egress.test.ts.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { existsSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { burrowContext, type BurrowContext, daemonPids } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { describeWhen, firstMissing, missingTools } from "../helpers/requirements.ts";
import { until } from "../helpers/until.ts";
import { addUplink } from "../helpers/netns.ts";

const why = firstMissing(integrationUnavailable(), () => missingTools(["nft", "nsenter", "python3"], "/usr/sbin:/usr/bin:/sbin:/bin"));
if (why) console.warn(`skipping the egress wiring tests: ${why}`);

/** Refusal events need the resolver service and NFLOG reader (E2's src/egress/worker.ts, E1's src/sys/nflog.ts). */
const refusalLog =
  existsSync(new URL("../../src/egress/worker.ts", import.meta.url).pathname) && existsSync(new URL("../../src/sys/nflog.ts", import.meta.url).pathname);

/** One UDP datagram to HOST:PORT: "sent", or the errno's name (EPERM: a rule dropped it). */
const UDP_SEND = (host: string, port: number) =>
  `import socket,errno\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ntry:\n  s.sendto(b"x",("${host}",${port})); print("sent")\nexcept OSError as e: print(errno.errorcode.get(e.errno, e.errno))\n`;
/** A TCP connect to HOST:PORT: "connected", "timeout", or the errno's name (ECONNREFUSED at once: the ruleset's reset). */
const TCP_CONNECT = (host: string, port: number) =>
  `import socket,errno\ns=socket.socket()\ns.settimeout(5)\ntry:\n  s.connect(("${host}",${port})); print("connected")\nexcept socket.timeout: print("timeout")\nexcept OSError as e: print(errno.errorcode.get(e.errno, e.errno))\n`;

/** As root (this test's own identity), inside the network namespace of process `pid`. */
function inNetnsOf(pid: number, cmd: string[]): { code: number; stdout: string } {
  const p = Bun.spawnSync(["nsenter", `--net=/proc/${pid}/ns/net`, "--", ...cmd], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString() };
}
/** Documentation addresses (RFC 5737): routed out of every sandbox's default route, reached by nothing. */
const DENIED = "198.51.100.20";
const OTHER = "203.0.113.7";

const oneLine = (s: string) => {
  const lines = s.trim().split("\n");
  expect(lines).toHaveLength(1);
  return lines[0]!;
};

for (const mode of ["rootless", "rootful"] as const) {
  describeWhen(why)(`egress wiring (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    /** `nft ARGS` in the netns of the sandbox's command (as root, from outside: the command itself holds no CAP_NET_ADMIN). */
    async function nftOf(name: string, ...args: string[]) {
      const pid = JSON.parse(await t.burrowOk(["inspect", name]))[0].State.Pid as number;
      expect(pid).toBeGreaterThan(0);
      return inNetnsOf(pid, ["nft", ...args]);
    }
    /** The socket inodes the daemon holds now. */
    function daemonSockets(): Set<string> {
      const [pid] = daemonPids(t);
      const out = new Set<string>();
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
          if (link.startsWith("socket:")) out.add(link);
        } catch {} // closed meanwhile
      }
      return out;
    }
    async function inspect(name: string) {
      return JSON.parse(await t.burrowOk(["inspect", name]))[0];
    }

    test("bad values and refused combinations: one line naming the value, exit 125, nothing made", async () => {
      await t.burrowOk(["run", "-d", "--name", "owner", "--network", "none", "--", "sleep", "300"]);
      const ownerPid = JSON.parse(await t.burrowOk(["inspect", "owner"]))[0].State.Pid;
      const cases: Array<[string[], RegExp]> = [
        [["--allow-cidr", "10.0.0.0/33"], /^Error: invalid --allow-cidr "10\.0\.0\.0\/33": .* accepted: /],
        [["--allow-host", "*.com"], /^Error: invalid --allow-host "\*\.com": /],
        [["--deny-cidr", "private:70000"], /^Error: invalid --deny-cidr "private:70000": port 70000 is outside 1-65535/],
        [["--egress-log-only"], /^Error: --egress-log-only needs a rule to log/],
        [["--allow-cidr", "192.0.2.9", "--network", "host"], /^Error: --allow-cidr 192\.0\.2\.9\/32 cannot be used with --network host/],
        [["--deny-cidr", "private", "--network", "container:owner"], /^Error: --deny-cidr private cannot be used with --network container:NAME/],
        [["--deny-cidr", "private", "--network", `ns:/proc/${ownerPid}/ns/net`], /^Error: --deny-cidr private cannot be used with --network ns:PATH/],
        [["--allow-host", "pypi.org", "--cap-add", "NET_ADMIN"], /^Error: --cap-add NET_ADMIN cannot be combined with --allow-host pypi\.org/],
        [["--allow-host", "pypi.org", "--cap-add", "ALL"], /^Error: --cap-add NET_ADMIN,NET_RAW,SYS_ADMIN cannot be combined with/],
        [["--allow-host", "pypi.org", "--privileged"], /^Error: --privileged cannot be combined with --allow-host pypi\.org/],
        [["--deny-cidr", "private", "--dns", "nope"], /^Error: invalid --dns "nope"/],
      ];
      for (const [flags, message] of cases) {
        const r = await t.burrow(["run", "--rm", "--name", "refused", ...flags, "--", "true"]);
        expect(r.code, flags.join(" ")).toBe(125);
        expect(oneLine(r.stderr)).toMatch(message);
      }
      // Joining a sandbox that has rules: the joiner shares its table, so it may not hold what could change it.
      await t.burrowOk(["run", "-d", "--name", "guarded", "--network", "none", "--deny-cidr", "private", "--", "sleep", "300"]);
      for (const flags of [["--cap-add", "NET_ADMIN"], ["--privileged"]]) {
        const r = await t.burrow(["run", "--rm", "--name", "refused", "--network", "container:guarded", ...flags, "--", "true"]);
        expect(r.code, flags.join(" ")).toBe(125);
        expect(oneLine(r.stderr)).toMatch(
          /^Error: sandbox guarded, whose network this joins, has egress rules: --(cap-add NET_ADMIN|privileged) cannot be combined with --deny-cidr private/,
        );
      }
      const joined = await t.burrow(["run", "--rm", "--network", "container:guarded", "--", "true"]);
      expect(joined.code).toBe(0);
      const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]));
      expect(ps.map((s: { Names: string[] }) => s.Names[0]).sort()).toEqual(["guarded", "owner"]);
      await t.burrowOk(["rm", "-f", "owner", "guarded"]);
    });

    test("the ruleset is in the sandbox's netns before its command runs, and the kernel enforces it; no policy: no table", async () => {
      // Without a policy both sends go out, and there is no table.
      const free = await t.burrow(["run", "--rm", "--", "python3", "-c", `${UDP_SEND(DENIED, 9)}${UDP_SEND(OTHER, 9)}`]);
      expect(free.stdout).toBe("sent\nsent\n");
      // The command's very first send already meets the rules: they are loaded before it starts.
      const r = await t.burrow([
        "run",
        "--rm",
        "--deny-cidr",
        "198.51.100.0/24",
        "--",
        "python3",
        "-c",
        `${UDP_SEND(DENIED, 9)}${UDP_SEND(OTHER, 9)}${TCP_CONNECT(DENIED, 80)}`,
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("EPERM\nsent\nECONNREFUSED\n");
      // Any allow rule: everything else is refused, the host's gateway (private) as well.
      const allow = await t.burrow([
        "run",
        "--rm",
        "--allow-cidr",
        "192.0.2.99:443/tcp",
        "--",
        "python3",
        "-c",
        `${UDP_SEND(OTHER, 9)}${UDP_SEND("10.0.2.2", 9)}`,
      ]);
      expect(allow.stdout).toBe("EPERM\nEPERM\n");

      await t.burrowOk(["run", "-d", "--name", "plain", "--", "sleep", "300"]);
      expect((await nftOf("plain", "list", "table", "inet", "burrow_egress")).code).not.toBe(0);
      await t.burrowOk(["run", "-d", "--name", "ruled", "--allow-host", "pypi.org", "--deny-cidr", "private", "--", "sleep", "300"]);
      const table = await nftOf("ruled", "list", "table", "inet", "burrow_egress");
      expect(table.code).toBe(0);
      expect(table.stdout).toContain("set allow_0_v4");
      expect(table.stdout).toContain('log prefix "burrow-egress deny[0] " group 25205');
      expect(table.stdout).toContain('log prefix "burrow-egress default " group 25205');
      // The command cannot read (or change) it: it holds no CAP_NET_ADMIN.
      const inside = await t.burrow(["exec", "ruled", "nft", "list", "ruleset"]);
      expect(inside.code).not.toBe(0);
      // exec joins the same netns: the same rules.
      expect((await t.burrowOk(["exec", "ruled", "python3", "-c", UDP_SEND(OTHER, 9)])).trim()).toBe("EPERM");
      // burrow's resolver's sockets are bound on the sandbox's loopback.
      const pid = (await inspect("ruled")).State.Pid;
      const ss = inNetnsOf(pid, ["ss", "-Hlnu", "src", "127.0.0.53:53"]);
      expect(ss.stdout).toContain("127.0.0.53:53");
      const sst = inNetnsOf(pid, ["ss", "-Hlnt", "src", "127.0.0.53:53"]);
      expect(sst.stdout).toContain("127.0.0.53:53");
      await t.burrowOk(["rm", "-f", "plain", "ruled"]);
    });

    test("a create that fails after the rules were loaded gives their sockets back; so does rm", async () => {
      await t.burrowOk(["ps"]); // the daemon, with whatever it holds at rest
      const before = daemonSockets();
      const extra = () => [...daemonSockets()].filter((s) => !before.has(s));
      const r = await t.burrow(["run", "-d", "--name", "broken", "--deny-cidr", "private", "--", "/nonexistent/command"]);
      expect(r.code).toBe(127);
      expect(JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"]))).toEqual([]);
      // The CLI's own connections close as its requests end; the four egress sockets must go with the rollback.
      await until(() => extra().length === 0, 5000, "the daemon to hold no socket of the failed create");
      await t.burrowOk(["run", "-d", "--name", "held", "--deny-cidr", "private", "--", "sleep", "300"]);
      expect(extra().length).toBeGreaterThanOrEqual(4);
      await t.burrowOk(["rm", "-f", "held"]);
      await until(() => extra().length === 0, 5000, "the daemon to hold no socket of the removed sandbox");
    });

    test("resolv.conf names burrow's resolver alone; inspect shows the policy, its upstreams and what was learned", async () => {
      const r = await t.burrowOk([
        "run",
        "--rm",
        "--dns",
        "192.0.2.53",
        "--allow-host",
        "*.example.org:443/tcp",
        "--deny-cidr",
        "private",
        "--",
        "cat",
        "/etc/resolv.conf",
      ]);
      expect(r.split("\n").filter((l) => l.startsWith("nameserver"))).toEqual(["nameserver 127.0.0.53"]);
      const plain = await t.burrowOk(["run", "--rm", "--dns", "192.0.2.53", "--", "cat", "/etc/resolv.conf"]);
      expect(plain.split("\n").filter((l) => l.startsWith("nameserver"))).toEqual(["nameserver 192.0.2.53"]);

      await t.burrowOk([
        "run",
        "-d",
        "--name",
        "shown",
        "--dns",
        "192.0.2.53",
        "--egress-log-only",
        "--allow-host",
        "pypi.org",
        "--deny-cidr",
        "host:22",
        "--",
        "sleep",
        "300",
      ]);
      const view = await inspect("shown");
      expect(view.HostConfig.Egress).toEqual({
        Mode: "log-only",
        Allow: ["--allow-host pypi.org"],
        Deny: ["--deny-cidr host:22"],
        Resolver: "127.0.0.53",
        Upstream: ["192.0.2.53"],
      });
      expect(view.NetworkSettings.EgressLearned).toBe(0);
      // Log-only: the table is there, and lets everything through.
      expect((await t.burrowOk(["exec", "shown", "python3", "-c", UDP_SEND(OTHER, 9)])).trim()).toBe("sent");
      // ... counted by the default refusal's rule, which accepts under --egress-log-only.
      expect((await nftOf("shown", "list", "table", "inet", "burrow_egress")).stdout).toMatch(/\n\t\tcounter packets [1-9]\d* bytes \d+ accept\n\t}/);
      await t.burrowOk(["run", "-d", "--name", "none", "--", "sleep", "300"]);
      expect((await inspect("none")).HostConfig.Egress).toBeNull();
      await t.burrowOk(["rm", "-f", "shown", "none"]);
    });

    test("the policy is kept: restart, stop and start (new namespaces, rules loaded again), kill -9 of the daemon (the kernel's table kept, not reloaded)", async () => {
      await t.burrowOk(["run", "-d", "--name", "kept", "--deny-cidr", "198.51.100.0/24", "--", "sleep", "300"]);
      const refused = async () => (await t.burrowOk(["exec", "kept", "python3", "-c", `${UDP_SEND(DENIED, 9)}${UDP_SEND(OTHER, 9)}`])).trim();
      expect(await refused()).toBe("EPERM\nsent");
      await t.burrowOk(["restart", "-t", "1", "kept"]);
      expect(await refused()).toBe("EPERM\nsent");
      await t.burrowOk(["stop", "-t", "1", "kept"]);
      await t.burrowOk(["start", "kept"]);
      expect(await refused()).toBe("EPERM\nsent");
      expect((await inspect("kept")).HostConfig.Egress.Deny).toEqual(["--deny-cidr 198.51.100.0/24"]);

      // The drop counter has counted our refused sends since the last start: a reload would reset it.
      const counted = (await nftOf("kept", "list", "table", "inet", "burrow_egress")).stdout.match(
        /198\.51\.100\.0\/24 counter packets (\d+) bytes \d+ drop/,
      )![1];
      expect(Number(counted)).toBeGreaterThan(0);
      const pid = (await inspect("kept")).State.Pid;
      /** The inode of the socket bound to the resolver's UDP address in the sandbox's netns ("" for none). */
      const resolverSocket = () => /ino:(\d+)/.exec(inNetnsOf(pid, ["ss", "-Hlnue", "src", "127.0.0.53:53"]).stdout)?.[1] ?? "";
      const before = resolverSocket();
      expect(before).not.toBe("");
      const [daemon] = daemonPids(t);
      process.kill(daemon!, "SIGKILL");
      await until(() => !daemonPids(t).includes(daemon!), 10_000, "the daemon's end");
      // (Rootless, the holder's supervisor may start the next daemon at once: its socket may be there already.)
      const next = await t.burrowOk(["ps", "--format", "json"]); // starts the next daemon, which recovers the sandbox
      expect(JSON.parse(next)).toHaveLength(1);
      expect((await inspect("kept")).State.Pid).toBe(pid);
      expect((await nftOf("kept", "list", "table", "inet", "burrow_egress")).stdout).toContain(`198.51.100.0/24 counter packets ${counted} `);
      // The next daemon's own socket: the old one died with the old daemon.
      await until(() => ![before, ""].includes(resolverSocket()), 10_000, "the next daemon's resolver socket");
      expect(await refused()).toBe("EPERM\nsent");
      expect((await inspect("kept")).State.Error).toBe("");
      await t.burrowOk(["rm", "-f", "kept"]);
    });

    if (mode === "rootless")
      test("a logout (rm -rf of the runtime dir) takes nothing: the rules hold, the resolver's sockets stay, a start loads them again", async () => {
        await t.burrowOk(["run", "-d", "--name", "stays", "--deny-cidr", "198.51.100.0/24", "--", "sleep", "300"]);
        const pid = (await inspect("stays")).State.Pid;
        rmSync(t.dirs.runtimeDir, { recursive: true, force: true }); // what systemd-logind does
        expect((await t.burrowOk(["exec", "stays", "python3", "-c", `${UDP_SEND(DENIED, 9)}${UDP_SEND(OTHER, 9)}`])).trim()).toBe("EPERM\nsent");
        expect(inNetnsOf(pid, ["ss", "-Hlnu", "src", "127.0.0.53:53"]).stdout).toContain("127.0.0.53:53");
        await t.burrowOk(["stop", "-t", "1", "stays"]);
        await t.burrowOk(["start", "stays"]);
        expect((await t.burrowOk(["exec", "stays", "python3", "-c", `${UDP_SEND(DENIED, 9)}${UDP_SEND(OTHER, 9)}`])).trim()).toBe("EPERM\nsent");
        await t.burrowOk(["rm", "-f", "stays"]);
      });

    test("pasta: the same rules hold; -T/-U other than none is refused", async () => {
      const pasta = missingTools(["pasta"], "/usr/sbin:/usr/bin:/sbin:/bin");
      if (pasta) return console.warn(`skipping the pasta case: ${pasta}`);
      // Rootful, pasta copies the host's (here the test netns's) routable interface into the sandbox: the test gives it one.
      if (t.netns) await addUplink(t.netns);
      const r = await t.burrow(["run", "--rm", "--network", "pasta:-T,8080", "--deny-cidr", "private", "--", "true"]);
      expect(r.code).toBe(125);
      expect(oneLine(r.stderr)).toMatch(/^Error: --deny-cidr private cannot be used with pasta's -T\/--tcp-ns/);
      const ok = await t.burrow([
        "run",
        "--rm",
        "--network",
        "pasta:-T,none",
        "--deny-cidr",
        "198.51.100.0/24",
        "--",
        "python3",
        "-c",
        `${UDP_SEND(DENIED, 9)}${UDP_SEND(OTHER, 9)}`,
      ]);
      expect(ok.stdout).toBe("EPERM\nsent\n");
    });

    (refusalLog ? test : test.skip)("a refused connect becomes an event that names the destination and the rule", async () => {
      await t.burrowOk(["run", "-d", "--name", "loud", "--deny-cidr", "198.51.100.0/24", "--", "sleep", "300"]);
      expect((await t.burrowOk(["exec", "loud", "python3", "-c", TCP_CONNECT(DENIED, 8080)])).trim()).toBe("ECONNREFUSED");
      const event = await until(
        async () => {
          const out = await t.burrowOk(["events", "--stream", "false", "--filter", "sandbox=loud", "--format", "json"]);
          return (
            out
              .trim()
              .split("\n")
              .filter(Boolean)
              .map((l) => JSON.parse(l))
              // (The kernel's own IPv6 multicast listener reports may be refused too: not this test's.)
              .find((e) => e.type === "egress-refused" && e.attributes.destination === DENIED)
          );
        },
        10_000,
        "the refusal event",
      );
      expect(event.attributes).toMatchObject({ destination: DENIED, port: 8080, protocol: "tcp", rule: "--deny-cidr 198.51.100.0/24", reason: "deny rule" });
      await t.burrowOk(["rm", "-f", "loud"]);
    });
  });
}
if (!refusalLog) console.warn("skipping the egress refusal event test: needs E1's nflog and E2's resolver service (merge)");
