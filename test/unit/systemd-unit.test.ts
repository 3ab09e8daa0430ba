// The unit `burrow generate systemd NAME` prints: its directives, written
// from systemd.service(5) and podman-generate-systemd(1)'s non---new units.
import { describe, expect, test } from "bun:test";
import { systemdQuote, systemdUnit, unitName } from "../../src/sandbox/systemd-unit.ts";

const base = {
  name: "web",
  id: "a".repeat(64),
  binary: "/usr/local/bin/burrow",
  stopTimeout: 10,
  restart: "on-failure",
  env: {},
  version: "0.1.0",
  rootful: false,
};

function directives(unit: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let section = "";
  for (const line of unit.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^\[(\w+)\]$/.exec(line);
    if (m) {
      section = m[1]!;
      continue;
    }
    const eq = line.indexOf("=");
    (out[`${section}.${line.slice(0, eq)}`] ??= []).push(line.slice(eq + 1));
  }
  return out;
}

describe("systemd unit", () => {
  test("starts the sandbox with burrow start, stops it with burrow stop -t, and stays active", () => {
    const d = directives(systemdUnit(base));
    expect(d["Service.ExecStart"]).toEqual(["/usr/local/bin/burrow start web"]);
    expect(d["Service.ExecStop"]).toEqual(["/usr/local/bin/burrow stop -t 10 web"]);
    expect(d["Service.Type"]).toEqual(["oneshot"]);
    expect(d["Service.RemainAfterExit"]).toEqual(["yes"]);
    expect(d["Service.Restart"]).toEqual(["on-failure"]);
    // podman's stop timeout plus 60 s
    expect(d["Service.TimeoutStopSec"]).toEqual(["70"]);
    // the shared daemon must not be killed with the unit
    expect(d["Service.KillMode"]).toEqual(["process"]);
    expect(d["Service.Environment"]).toBeUndefined();
    expect(d["Unit.After"]).toEqual(["network-online.target"]);
    expect(d["Unit.Wants"]).toEqual(["network-online.target"]);
    expect(d["Install.WantedBy"]).toEqual(["default.target"]);
    expect(unitName("web")).toBe("burrow-web.service");
  });

  test("the stop timeout, restart setting and burrow's dir variables are carried", () => {
    const d = directives(
      systemdUnit({ ...base, stopTimeout: 3, restart: "always", env: { BURROW_STATE_DIR: "/srv/state dir", BURROW_RUNTIME_DIR: "/run/x" } }),
    );
    expect(d["Service.ExecStop"]).toEqual(["/usr/local/bin/burrow stop -t 3 web"]);
    expect(d["Service.TimeoutStopSec"]).toEqual(["63"]);
    expect(d["Service.Restart"]).toEqual(["always"]);
    expect(d["Service.Environment"]).toEqual(["BURROW_RUNTIME_DIR=/run/x", '"BURROW_STATE_DIR=/srv/state dir"']);
  });

  test("words are quoted as systemd reads them, % doubled", () => {
    expect(systemdQuote("/usr/bin/burrow")).toBe("/usr/bin/burrow");
    expect(systemdQuote("a b")).toBe('"a b"');
    expect(systemdQuote('say "hi"\\')).toBe('"say \\"hi\\"\\\\"');
    expect(systemdQuote("50%")).toBe("50%%");
    expect(systemdQuote("$HOME/x")).toBe('"$$HOME/x"');
    const d = directives(systemdUnit({ ...base, binary: "/opt/my tools/burrow" }));
    expect(d["Service.ExecStart"]).toEqual(['"/opt/my tools/burrow" start web']);
  });

  test("rootful units say where system units go", () => {
    expect(systemdUnit({ ...base, rootful: true })).toContain("# Install: copy to /etc/systemd/system/, then systemctl enable --now burrow-web.service");
    expect(systemdUnit(base)).toContain("systemctl --user enable --now burrow-web.service");
  });
});
