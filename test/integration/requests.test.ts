// Requests over the real control socket are parsed or refused (issue 10
// item 4): malformed JSON is a 400 that changes nothing, unknown routes
// (inherited names included) are 404s, bodies are limited to 1 MiB, errors
// quote only a short prefix, and a time-bounded fuzzer feeds every route.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { relayAs } from "../helpers/socket-peer.ts";
import { until } from "../helpers/until.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping request integration tests: ${why}`);

/** How long the fuzzer runs (BURROW_FUZZ_MS for a longer run, as scripts/fuzz.sh does). */
const FUZZ_MS = Number(process.env.BURROW_FUZZ_MS || 4000);

interface Answer {
  status: number;
  text: string;
}

describe.skipIf(!!why)("control requests (rootless)", () => {
  let t: BurrowContext;
  let sock: string;
  beforeEach(async () => {
    t = await burrowContext("rootless");
    await t.burrowOk(["network", "create", "keep1"]); // starts the daemon too
    // The daemon serves only its own user (SO_PEERCRED), not this root
    // process: requests go through a relay run as the test user.
    sock = await relayAs(t, `${t.dirs.runtimeDir}/control.sock`);
  });
  afterEach(async () => {
    await t.dispose();
  });

  async function post(path: string, body: string | Uint8Array): Promise<Answer> {
    const res = await fetch(`http://burrow${path}`, { unix: sock, method: "POST", body, headers: { "content-type": "application/json" } } as RequestInit);
    return { status: res.status, text: await res.text() };
  }

  /**
   * A foreground sandbox made by a raw create (`none`, `true`), and the pid
   * of a command that has exited, as the CLI's child is when it reports (a
   * live one's exit report is ignored).
   */
  async function createdWithGonePid(name: string): Promise<{ id: string; pid: number }> {
    const created = await post("/create", JSON.stringify({ name, network: "none", argv: ["true"] }));
    expect(created.status).toBe(200);
    const gone = Bun.spawn(["true"]);
    await gone.exited;
    return { id: (JSON.parse(created.text) as { id: string }).id, pid: gone.pid };
  }

  /** What a refused request must not change: sandboxes, networks, the daemon. */
  async function state(): Promise<string> {
    const list = JSON.parse((await post("/list", '{"all":true}')).text) as Array<{ Id: string; Names: string[]; State: string }>;
    const nets = JSON.parse((await post("/networkList", "{}")).text) as { networks: Array<{ name: string }> };
    const ping = JSON.parse((await post("/ping", "{}")).text) as { pid: number };
    return JSON.stringify({ sandboxes: list.map((s) => [s.Id, s.Names, s.State]), networks: nets.networks.map((n) => n.name).sort(), daemon: ping.pid });
  }

  test("an exit report whose body never comes holds the requests after it back about a second, not for ever", async () => {
    // Requests after an exit report wait for it (a run may not wait for its
    // answer: src/daemon/main.ts exitReports); a client that stalls after the
    // headers must not stop the daemon.
    let opened!: () => void;
    const ready = new Promise<void>((r) => (opened = r));
    const stalled = await Bun.connect({ unix: sock, socket: { open: () => opened(), data() {} } });
    await ready;
    stalled.write("POST /exited HTTP/1.1\r\nHost: burrow\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n");
    stalled.flush();
    await Bun.sleep(100);
    const t0 = performance.now();
    const list = await post("/list", '{"all":true}');
    const waited = performance.now() - t0;
    expect(list.status).toBe(200);
    // It did wait for the report (the hold is 1 s), and was answered while the stalled connection is still open.
    expect(waited).toBeGreaterThan(500);
    stalled.end();
  });

  test("malformed JSON is a 400 and changes nothing: garbage does not prune, a truncated body creates nothing", async () => {
    const before = await state();
    const prune = await post("/networkPrune", "garbage");
    expect(prune.status).toBe(400);
    expect(JSON.parse(prune.text).error).toBe('invalid request: the body of networkPrune is not JSON (starts with "garbage")');
    const create = await post("/networkCreate", '{"name":"burrow2');
    expect(create.status).toBe(400);
    expect((await post("/networkCreate", "")).status).toBe(400);
    expect(await state()).toBe(before);
    expect(JSON.parse(await t.burrowOk(["network", "ls", "--format", "json"])).map((n: { name: string }) => n.name)).toContain("keep1");
  });

  test("unknown routes, __proto__ and constructor included, are 404", async () => {
    for (const route of ["/__proto__", "/constructor", "/toString", "/hasOwnProperty", "/nope", "/", "/create/x"]) {
      const r = await post(route, "{}");
      expect({ route, status: r.status }).toEqual({ route, status: 404 });
      expect(JSON.parse(r.text).error).toStartWith("unknown operation ");
    }
  });

  test("a body over 1 MiB is refused without being echoed; a long value is quoted only by its prefix", async () => {
    const big = await post("/networkCreate", `{"name":"${"a".repeat(2 << 20)}"}`);
    expect(big.status).toBe(413);
    expect(big.text.length).toBeLessThan(300);
    const long = await post("/networkCreate", `{"name":"${"b".repeat(100_000)}"}`);
    expect(long.status).toBe(400);
    expect(long.text.length).toBeLessThan(600);
    const notJson = await post("/networkPrune", "x".repeat(500_000));
    expect(notJson.status).toBe(400);
    expect(notJson.text.length).toBeLessThan(300);
  });

  test("network prune beside a slirp4netns sandbox (found by the fuzzer: it answered 500)", async () => {
    await t.burrowOk(["run", "-d", "--name", "s1", "--", "sleep", "30"]);
    try {
      const r = await t.burrow(["network", "prune", "-f"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("keep1\n");
      expect(r.code).toBe(0);
    } finally {
      await t.burrowOk(["rm", "-f", "s1"]);
    }
  });

  test("a 300-character network name and a bad sandbox name are refused naming a prefix of the value", async () => {
    const long = "n".repeat(300);
    const r = await t.burrow(["network", "create", long]);
    expect(r.code).toBe(125);
    expect(r.stderr.trim()).toBe(`Error: invalid network name "${"n".repeat(60)}…": it is 300 characters long; the limit is 246`);
    const bad = await t.burrow(["run", "--rm", "--name", "bad name", "--network", "none", "--", "true"]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain('invalid name "bad name"');
  });

  test(
    `fuzzer: random and mutated bodies on every route for ${FUZZ_MS} ms: no crash, no 500, no change on 4xx`,
    async () => {
      const valid: Record<string, unknown> = {
        create: { argv: ["true"], network: "none", rm: true },
        started: { id: "nope", pid: 1 },
        exited: { id: "nope", exitCode: 0 },
        list: { all: true },
        inspect: { name: "nope" },
        enter: { name: "nope" },
        logs: { name: "nope" },
        port: { name: "nope" },
        stop: { name: "nope", timeout: 0 },
        rm: { name: "nope", force: true },
        info: {},
        ping: {},
        events: { since: 0 },
        stats: { names: ["nope"] },
        networkCreate: { name: "fuzz1", subnets: ["10.77.0.0/24"] },
        networkList: {},
        networkInspect: { name: "nope" },
        networkRemove: { names: ["nope"] },
        networkPrune: {},
        networkConnect: { network: "nope", sandbox: "nope" },
        networkDisconnect: { network: "nope", sandbox: "nope" },
        networkReload: { sandboxes: ["nope"] },
      };
      const routes = Object.keys(valid);
      const mutated = fc
        .tuple(fc.constantFrom(...routes), fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), fc.nat())
        .map(([route, key, value, cut]) => {
          const base = { ...(valid[route] as Record<string, unknown>) };
          const keys = Object.keys(base);
          const k = keys.length && cut % 3 ? keys[cut % keys.length]! : key;
          base[k] = value;
          const text = JSON.stringify(base);
          return { route, body: cut % 5 === 0 ? text.slice(0, cut % (text.length + 1)) : text };
        });
      const random = fc
        .tuple(fc.constantFrom(...routes, "__proto__", "constructor", "prototype"), fc.oneof(fc.string(), fc.json(), fc.uint8Array({ maxLength: 64 })))
        .map(([route, body]) => ({ route, body }));
      const answers: Record<number, number> = {};
      const result = await fc
        .check(
          fc.asyncProperty(fc.oneof(mutated, random), async ({ route, body }) => {
            const before = await state();
            const r = await post(`/${route}`, body);
            answers[r.status] = (answers[r.status] ?? 0) + 1;
            if (r.status >= 500) throw new Error(`${route} answered ${r.status}: ${r.text.slice(0, 300)}`);
            const reply = JSON.parse(r.text);
            // A sandbox a 2xx create made would change by itself later (the
            // daemon ends created rows nobody starts): remove it now, so every
            // later change is one a request made.
            if (route === "create" && r.status === 200) await post("/rm", JSON.stringify({ name: reply.id, force: true }));
            if (r.status >= 400) {
              if (typeof reply.error !== "string" || reply.error.includes("\n")) throw new Error(`${route}: error is not one line: ${r.text.slice(0, 300)}`);
              const after = await state();
              if (after !== before) throw new Error(`${route} answered ${r.status} but changed state:\n${before}\n${after}`);
            }
          }),
          {
            numRuns: 1_000_000,
            interruptAfterTimeLimit: FUZZ_MS,
            markInterruptAsFailure: false,
            seed: Number(process.env.BURROW_FUZZ_SEED || Date.now() % 2 ** 31),
          },
        )
        .finally(async () => {
          // Whatever the fuzzer made on a 2xx goes, the normal way.
          const left = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])) as Array<{ Id: string }>;
          for (const s of left) await t.burrowOk(["rm", "-f", s.Id]);
        });
      if (result.failed)
        throw new Error(
          `fuzzer (seed ${result.seed}, counterexample ${JSON.stringify(result.counterexample)}): ${result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance)}`,
        );
      console.log(`fuzzer: ${result.numRuns} requests, answers by status ${JSON.stringify(answers)}`);
      expect(result.numRuns).toBeGreaterThan(20);
    },
    FUZZ_MS + 60_000,
  );

  test("an exit report that overtakes its started report: the sandbox is marked started first (events create, start, died), a late started changes nothing", async () => {
    // `run` sends its exit without waiting for started's reply (issue 17):
    // the daemon may get the exit first.
    const { id, pid } = await createdWithGonePid("overtaken");
    const exited = await post("/exited", JSON.stringify({ id, exitCode: 0, pid }));
    expect(exited.status).toBe(200);
    const late = await post("/started", JSON.stringify({ id, pid }));
    expect(late.status).toBe(200);
    const inspect = JSON.parse(await t.burrowOk(["inspect", "overtaken"]));
    expect(inspect[0].State.Status).toBe("exited");
    expect(inspect[0].State.ExitCode).toBe(0);
    const events = (await t.burrowOk(["events", "--stream=false", "--format", "json"]))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { name: string; type: string });
    expect(events.filter((e) => e.name === "overtaken").map((e) => e.type)).toEqual(["create", "start", "died"]);
    await t.burrowOk(["rm", "overtaken"]);
  });

  test("a started report that comes after its command is gone, and no exit report: the reap releases the sandbox within about a second", async () => {
    // A run that does not wait for its exit report's answer (issue 17) may
    // have that report refused (another user's connection open at that
    // moment: src/daemon/peers.ts). Its started report, answered first, came
    // after a short command had exited, so no start time was recorded: the
    // reap must still see the command gone (it once compared null to null).
    const { id, pid } = await createdWithGonePid("unreported");
    expect((await post("/started", JSON.stringify({ id, pid }))).status).toBe(200);
    const status = async () => JSON.parse(await t.burrowOk(["inspect", "unreported"]))[0].State.Status as string;
    expect(await status()).toBe("running");
    // The reap runs every second: two turns at most.
    await until(async () => (await status()) === "exited", 2500, "the reap to release the sandbox whose command is gone");
    await t.burrowOk(["rm", "unreported"]);
  });
});
