// The accelerator's egress path through the real Worker (src/accelerate/
// supervisor.ts and worker.ts): a sandbox registered with an egress policy,
// python3 under the filter in this process's own network namespace (the
// "sandbox" namespace here), its listener handed over with the token as an
// enter step hands it. What the policy refuses whatever is learned is
// answered ECONNREFUSED and reported to the refusal hook; what a host rule
// could reach runs inside (the ruleset's word) until its address is learned,
// then gets a host socket; --egress-log-only lets it out and reports it. Each
// attempt says whether its socket became a host socket (ADDFD: a new inode).
import { afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import type { AcceleratorRefusal } from "../../src/accelerate/protocol.ts";
import type { Scope } from "../../src/accelerate/scope.ts";
import { Accelerator, type Handoff } from "../../src/accelerate/supervisor.ts";
import { type EgressFlags, parseEgressFlags } from "../../src/egress/policy.ts";
import { acceleratedFilter } from "../../src/sys/seccomp.ts";
import { connectUnix } from "../../src/sys/unix-socket.ts";
import { filterTestSetup } from "../helpers/accelerate.ts";
import { until } from "../helpers/until.ts";

/** A non-loopback address of this machine: the supervisor never hands loopback a host socket. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && !a.internal && a.family === "IPv4")?.address;

describe("the supervisor applies a sandbox's egress policy", () => {
  let helper = "";
  let why = "";
  beforeAll(async () => {
    ({ helper, why } = await filterTestSetup());
    if (!why && !outside) why = "this machine has no non-loopback IPv4 address to connect to";
  });

  let dir: string;
  let accelerator: Accelerator;
  let refusals: AcceleratorRefusal[];
  let servers: Bun.TCPSocketListener[] = [];
  beforeEach(() => {
    dir = mkdtempSync(`${tmpdir()}/burrow-accel-sup-`);
    accelerator = new Accelerator(`${dir}/accelerate.sock`, process.getuid?.() ?? 0);
    refusals = [];
    accelerator.setRefusalHook((sandbox, refusal, logOnly) => refusals.push({ sandbox, refusal, logOnly }));
  });
  afterEach(() => {
    for (const server of servers) server.stop(true);
    servers = [];
    accelerator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const scope = (): Scope => ({ netnsInode: statSync("/proc/self/ns/net").ino, inside: [], allowHostLoopback: false });
  const flags = (f: Partial<EgressFlags>): EgressFlags => ({ allowHost: [], allowCidr: [], denyCidr: [], logOnly: false, ...f });

  function listen(): number {
    const listening = Bun.listen({ hostname: outside!, port: 0, socket: { data() {}, open: (s) => void s.end() } });
    servers.push(listening);
    return listening.port;
  }

  /** python3 under the filter, its listener handed to the supervisor with `handoff`'s token (as enter-spawn.ts does). */
  function sandboxed(handoff: Handoff, code: string) {
    const filterPath = `${dir}/filter`;
    writeFileSync(filterPath, acceleratedFilter());
    const filterFd = openSync(filterPath, "r");
    const handoffFd = connectUnix(handoff.socket);
    writeSync(handoffFd, `${handoff.token}\n`);
    const child = Bun.spawn([helper, "-F", "3", "-S", "4", "--", "/usr/bin/python3", "-c", code], {
      stdio: ["pipe", "pipe", "pipe", filterFd, handoffFd],
      env: { PATH: "/usr/bin:/bin" },
    });
    closeSync(filterFd);
    closeSync(handoffFd);
    return child;
  }

  const ATTEMPT = `import socket,errno,sys,os
def attempt(host, port):
  s=socket.socket()
  try:
    before=os.fstat(s.fileno()).st_ino
    s.connect((host,port))
    # The supervisor's host socket replaces the fd (ADDFD): another inode.
    where="host" if os.fstat(s.fileno()).st_ino!=before else "inside"
    print("local", s.getsockname()[0], where, flush=True)
  except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), flush=True)
  s.close()
`;

  test("refused where no rule could allow it: ECONNREFUSED and a report; where a host rule could, inside (the ruleset judges) until learned, then a host socket", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const port = listen();
    const policy = parseEgressFlags(flags({ allowHost: [`svc.test:${port}`] }))!;
    const handoff = accelerator.expect("sandbox-enforce", scope(), { policy, context: { hostAddresses: [] } });
    const child = sandboxed(
      handoff,
      `${ATTEMPT}attempt("${outside}", 9)\nattempt("${outside}", ${port})\nsys.stdin.readline()\nattempt("${outside}", ${port})\n`,
    );
    const out: string[] = [];
    void (async () => {
      for await (const chunk of child.stdout as ReadableStream<Uint8Array>) out.push(...new TextDecoder().decode(chunk).split("\n").filter(Boolean));
    })();
    // Port 9: no rule reaches it whatever is learned, so the supervisor refuses it (and reports it).
    // The rule's port, not learned yet: the sandbox's ruleset has the final word (its sets may have the address
    // before the supervisor hears of it), so the connect runs inside: here, this test's namespace, with no ruleset.
    await until(() => out.length >= 2, 10_000, "the first two attempts");
    expect(out).toEqual(["ECONNREFUSED", `local ${outside} inside`]);
    // burrow's resolver answered svc.test with it (rule 0).
    accelerator.egressLearned("sandbox-enforce", 0, outside!, Date.now() + 60_000);
    // An unregistered sandbox's learned address goes nowhere (and breaks nothing).
    accelerator.egressLearned("sandbox-unknown", 0, "198.51.100.7", Date.now() + 60_000);
    child.stdin.write("go\n");
    await child.stdin.end();
    expect(await child.exited).toBe(0);
    expect(out).toEqual(["ECONNREFUSED", `local ${outside} inside`, `local ${outside} host`]);
    await until(() => refusals.length >= 1, 10_000, "the refusal report");
    expect(refusals).toEqual([
      {
        sandbox: "sandbox-enforce",
        refusal: { destination: outside!, port: 9, protocol: "tcp", rule: null, reason: "default deny" },
        logOnly: false,
      },
    ]);
  });

  test("addresses given with the registration (a restarted daemon's read-back of the sets) count from the first connect; expired ones do not", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const [port, other] = [listen(), listen()];
    // Rule 0 reaches one server's port, rule 1 the other's: the same address, learned for both, rule 1's entry expired.
    const policy = parseEgressFlags(flags({ allowHost: [`svc.test:${port}`, `old.test:${other}`] }))!;
    const now = Date.now();
    const handoff = accelerator.expect("sandbox-restored", scope(), {
      policy,
      context: { hostAddresses: [] },
      learned: [
        { allowIndex: 0, address: outside!, expiresAt: now + 60_000 },
        { allowIndex: 1, address: outside!, expiresAt: now - 1 },
      ],
    });
    const child = sandboxed(handoff, `${ATTEMPT}attempt("${outside}", ${port})\nattempt("${outside}", ${other})\nattempt("${outside}", 9)\n`);
    child.stdin.end();
    expect(await child.exited).toBe(0);
    // The expired entry opens no host socket: that connect runs inside, where the ruleset judges it. Port 9: refused here.
    expect((await new Response(child.stdout).text()).trim().split("\n")).toEqual([`local ${outside} host`, `local ${outside} inside`, "ECONNREFUSED"]);
    await until(() => refusals.length >= 1, 10_000, "the refusal report");
    expect(refusals.map((r) => `${r.refusal.destination}:${r.refusal.port} ${r.refusal.reason}`)).toEqual([`${outside}:9 default deny`]);
  });

  test("--egress-log-only: the connection is made and reported as the refusal it would have been", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const port = listen();
    const policy = parseEgressFlags(flags({ allowCidr: ["198.51.100.0/24"], logOnly: true }))!;
    const handoff = accelerator.expect("sandbox-logged", scope(), { policy, context: { hostAddresses: [] } });
    const child = sandboxed(handoff, `${ATTEMPT}attempt("${outside}", ${port})\n`);
    child.stdin.end();
    expect(await child.exited).toBe(0);
    expect((await new Response(child.stdout).text()).trim()).toBe(`local ${outside} host`);
    await until(() => refusals.length >= 1, 10_000, "the would-refuse report");
    expect(refusals).toEqual([
      { sandbox: "sandbox-logged", refusal: { destination: outside!, port, protocol: "tcp", rule: null, reason: "default deny" }, logOnly: true },
    ]);
  });
});
