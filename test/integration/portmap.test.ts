// The CNI portmap port driver (rootful bridge networks), as root in a
// test-made netns: a random host port (-p 127.0.0.1::80) that prepare()
// picked and holds is given back at once when the create fails before the
// ports' setup (src/ports/portmap/driver.ts, src/daemon/create.ts).
import { afterEach, beforeEach, expect, test } from "bun:test";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { sandboxNames } from "../helpers/published.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { describeWhen } from "../helpers/requirements.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping portmap integration tests: ${why}`);

describeWhen(why)("portmap (rootful)", () => {
  let t: BurrowContext;
  beforeEach(async () => {
    t = await burrowContext("rootful");
  });
  afterEach(async () => {
    await t.dispose();
  });

  /** Binds 127.0.0.1:port in the test netns and lets go: true when nobody holds it. */
  const bindable = async (port: number) => (await t.run(["python3", "-c", `import socket; s = socket.socket(); s.bind(("127.0.0.1", ${port}))`])).code === 0;

  test("a create that fails after its random host port was picked gives the port back at once", async () => {
    // Only two ports for bind(0) in this netns (ip_local_port_range is per
    // network namespace, and this one is the test's own): the port the
    // driver picks is one of them, known in advance.
    const range = [40310, 40311];
    const sysctl = await t.run(["sysctl", "-w", `net.ipv4.ip_local_port_range=${range[0]} ${range[1]}`]);
    expect(sysctl.stderr).toBe("");
    await t.burrowOk(["network", "create", "--subnet", "10.89.41.0/24", "pm"]);
    await t.burrowOk(["run", "-d", "--name", "first", "--network", "pm", "--ip", "10.89.41.50", "--", "sleep", "3041"]);
    for (const p of range) expect(await bindable(p)).toBe(true);
    // The same --ip again: refused by host-local in the CNI ADD, which runs
    // after the ports were prepared (the random one picked and held).
    const r = await t.burrow(["run", "--name", "second", "--network", "pm", "--ip", "10.89.41.50", "-p", "127.0.0.1::80", "--", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("requested IP address 10.89.41.50 is not available");
    // At once (before, the pick stayed bound for 30 s): both ports are free.
    for (const p of range) expect(await bindable(p)).toBe(true);
    // and a new create gets one of them
    await t.burrowOk(["run", "-d", "--name", "third", "--network", "pm", "-p", "127.0.0.1::80", "--", "sleep", "3042"]);
    const port = (await t.burrowOk(["port", "third"])).trim();
    expect(range.map((p) => `80/tcp -> 127.0.0.1:${p}`)).toContain(port);
    expect(await sandboxNames(t)).toEqual(["first", "third"]);
    await t.burrowOk(["rm", "-f", "first", "third"]);
    await t.burrowOk(["network", "rm", "pm"]);
    for (const p of range) expect(await bindable(p)).toBe(true);
  }, 60000);
});
