// The pasta library module against the real pasta, as root, in a network
// namespace made for the test. Published ports bind on 127.0.0.1 only.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BurrowError } from "../../src/errors.ts";
import { createNetns, type TestNetns } from "../helpers/netns.ts";
import { parsePastaMode } from "../../src/net/pasta/options.ts";
import { isPasta, probePasta, startPasta, type PastaFeatures } from "../../src/net/pasta/process.ts";
import { freePort, sh } from "../helpers/sys.ts";
import { describeWhen, firstMissing, missingTools, needsRoot } from "../helpers/requirements.ts";

const missing = firstMissing(needsRoot, () => missingTools(["pasta", "ip"]));

describeWhen(missing)("pasta (real, as root)", () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-pasta-test-"));
  let testNetns: TestNetns;
  let ns: string;
  let netnsPath: string;
  let features: PastaFeatures;

  beforeAll(async () => {
    // The shared helper names it after the run, so the suite's leak check knows it.
    testNetns = await createNetns();
    ns = testNetns.name;
    netnsPath = testNetns.path;
    features = await probePasta();
  });
  afterAll(async () => {
    try {
      expect(await testNetns.remove()).toEqual([]); // nothing left running inside
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("configures the namespace, publishes a port, stops", async () => {
    const www = join(dir, "www");
    sh("mkdir", "-p", www);
    writeFileSync(join(www, "hi.txt"), "hi through pasta\n");
    const hostPort = await freePort();
    const p = await startPasta({
      netnsPath,
      options: parsePastaMode("pasta")!,
      features,
      ports: [{ hostIp: "127.0.0.1", hostPort, containerPort: 8080, protocol: "tcp" }],
      logPath: join(dir, "pasta.log"),
      pidPath: join(dir, "pasta.pid"),
    });
    const server = Bun.spawn(["nsenter", `--net=${netnsPath}`, "--", "busybox", "httpd", "-f", "-p", "8080", "-h", www], {
      stdout: "ignore",
      stderr: "ignore",
    });
    try {
      expect(isPasta(p.pid)).toBe(true);
      const links = JSON.parse(sh("ip", "-n", ns, "-j", "addr")) as Array<{
        ifname: string;
        operstate: string;
        addr_info: Array<{ family: string; local: string }>;
      }>;
      const ext = links.find((l) => l.ifname !== "lo");
      expect(ext?.addr_info.some((a) => a.family === "inet")).toBe(true);
      const routes = JSON.parse(sh("ip", "-n", ns, "-j", "route", "show", "default")) as unknown[];
      expect(routes.length).toBe(1);

      let body = "";
      for (let i = 0; i < 50 && body === ""; i++) {
        try {
          body = await (await fetch(`http://127.0.0.1:${hostPort}/hi.txt`)).text();
        } catch {
          await Bun.sleep(20);
        }
      }
      expect(body).toBe("hi through pasta\n");
    } finally {
      server.kill();
      await server.exited;
      await p.stop();
    }
    expect(isPasta(p.pid)).toBe(false);
  });

  test("a failure is reported with pasta's words and leaves no pid file", async () => {
    let err: unknown;
    try {
      await startPasta({
        netnsPath: join(dir, "no-such-netns"),
        options: parsePastaMode("pasta")!,
        features,
        logPath: join(dir, "fail.log"),
        pidPath: join(dir, "fail.pid"),
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BurrowError);
    expect((err as Error).message).toMatch(/^pasta for \S+no-such-netns exited with code 1 \(pasta said: .+\)$/);
    expect(() => readFileSync(join(dir, "fail.pid"))).toThrow();
  });
});
