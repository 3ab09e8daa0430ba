// Issue 19 items 7 and 9: names that must not be given (reserved network
// names, id-shaped sandbox names), podman's lookup order (exact id, exact
// name, id prefix), and removing sandboxes that others joined
// (container:NAME): `rm -fa` orders them, `rm --depend` removes them first.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { burrowContext, type BurrowContext } from "../helpers/context.ts";
import { sandboxNames as names } from "../helpers/published.ts";
import { integrationUnavailable } from "../helpers/env.ts";
import { describeWhen } from "../helpers/requirements.ts";

const why = integrationUnavailable();
if (why) console.warn(`skipping names integration tests: ${why}`);

const RESERVED = ["none", "bridge", "host", "pasta", "slirp4netns", "private", "default", "container", "ns", "podman"];

for (const mode of ["rootless", "rootful"] as const) {
  describeWhen(why)(`names (${mode})`, () => {
    let t: BurrowContext;
    beforeEach(async () => {
      t = await burrowContext(mode);
    });
    afterEach(async () => {
      await t.dispose();
    });

    test("network create refuses every reserved word with one line, exit 125, and makes no conflist", async () => {
      for (const name of RESERVED) {
        const r = await t.burrow(["network", "create", name]);
        expect(r.code).toBe(125);
        expect(r.stdout).toBe("");
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain(`invalid network name "${name}": it is reserved`);
      }
      const conflists = existsSync(t.dirs.cniConfigDir) ? readdirSync(t.dirs.cniConfigDir) : [];
      expect(conflists.filter((f) => RESERVED.some((n) => f === `${n}.conflist`))).toEqual([]);
      // `--network host` still means the host's namespace, none still none.
      const ls = await t.burrowOk(["network", "ls", "--format", "{{.Name}}"]);
      for (const name of RESERVED) expect(ls.split("\n")).not.toContain(name);
      // Names that merely contain a reserved word are fine.
      await t.burrowOk(["network", "create", "hostnet"]);
      await t.burrowOk(["network", "rm", "hostnet"]);
    });

    test("a sandbox name shaped like an id (12 to 64 lowercase hex) is refused; an id always wins over a name", async () => {
      const victim = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "victim", "--", "sleep", "300"])).trim();
      for (const name of [victim, victim.slice(0, 12), "0123456789ab", "a".repeat(40)]) {
        const r = await t.burrow(["run", "-d", "--network", "none", "--name", name, "--", "sleep", "300"]);
        expect(r.code).toBe(125);
        expect(r.stdout).toBe("");
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain("the shape of a sandbox id");
      }
      // Not id-shaped: shorter hex, upper case, a letter past f, longer than an id.
      const fine = ["cafe", "0123456789AB", "0123456789ag", "a".repeat(65)];
      for (const name of fine) await t.burrowOk(["run", "-d", "--network", "none", "--name", name, "--", "sleep", "300"]);
      expect(await names(t)).toEqual([...fine, "victim"].sort());
      // podman's order: exact id, exact name, then id prefix. A short name
      // that is also a prefix of an id finds the name.
      const cafe = JSON.parse(await t.burrowOk(["inspect", "cafe", "--format", "json"]))[0].Id;
      expect(JSON.parse(await t.burrowOk(["inspect", "cafe", "--format", "json"]))[0].Name).toBe("cafe");
      expect((await t.burrowOk(["inspect", cafe.slice(0, 12), "--format", "{{.Name}}"])).trim()).toBe("cafe");
      // rm -f by the victim's id removes the victim.
      expect((await t.burrowOk(["rm", "-f", victim])).trim()).toBe(victim);
      expect(await names(t)).toEqual([...fine].sort());
      await t.burrowOk(["rm", "-fa"]);
      expect(await names(t)).toEqual([]);
    });

    test("rm -fa removes sandboxes that joined another's network first, and leaves nothing up", async () => {
      const owner = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "owner", "--", "sleep", "300"])).trim();
      const guest = (await t.burrowOk(["run", "-d", "--network", "container:owner", "--name", "guest", "--", "sleep", "300"])).trim();
      const guest2 = (await t.burrowOk(["run", "-d", "--network", "container:guest", "--name", "guest2", "--", "sleep", "300"])).trim();
      const r = await t.burrow(["rm", "-fa"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      // Each id once, dependants before what they depend on.
      expect(r.stdout.trim().split("\n")).toEqual([guest2, guest, owner]);
      expect(await names(t)).toEqual([]);
    });

    test("rm -f refuses a sandbox others joined; rm -f --depend removes them first", async () => {
      const owner = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "owner", "--", "sleep", "300"])).trim();
      const guest = (await t.burrowOk(["run", "-d", "--network", "container:owner", "--name", "guest", "--", "sleep", "300"])).trim();
      const other = (await t.burrowOk(["run", "-d", "--network", "none", "--name", "other", "--", "sleep", "300"])).trim();
      const refused = await t.burrow(["rm", "-f", "owner"]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr.trim().split("\n")).toHaveLength(1);
      expect(refused.stderr).toContain("shares its network with guest");
      expect(refused.stderr).toContain("--depend");
      expect(await names(t)).toEqual(["guest", "other", "owner"]);
      // Without -f a running owner is refused before any dependant goes.
      const running = await t.burrow(["rm", "--depend", "owner"]);
      expect(running.code).not.toBe(0);
      expect(running.stderr).toContain("sandbox owner is running");
      expect(await names(t)).toEqual(["guest", "other", "owner"]);
      const r = await t.burrowOk(["rm", "-f", "--depend", "owner"]);
      expect(r.trim().split("\n")).toEqual([guest, owner]);
      expect(await names(t)).toEqual(["other"]);
      expect((await t.burrowOk(["rm", "-f", "other"])).trim()).toBe(other);
    });
  });
}
