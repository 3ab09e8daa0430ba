import { defineCommand } from "./_command.ts";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { call, paths } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";
import { bool, one, parseStrict, str } from "./_args.ts";
import { printJson } from "./_shared.ts";
import { SYSTEMD_RESTART, systemdUnit, unitName } from "../sandbox/systemd-unit.ts";
import { version } from "../version.ts";

const systemdArgs = {
  time: { type: "string", alias: "t", description: "Seconds ExecStop's burrow stop waits before SIGKILL (default 10)" },
  "restart-policy": { type: "string", description: `systemd Restart= of the unit (default on-failure; ${SYSTEMD_RESTART.join(", ")})` },
  files: { type: "boolean", alias: "f", description: "Write burrow-NAME.service into the current directory and print its path" },
  format: { type: "string", description: "Output format: json ({unit name: text})", valueHint: "json" },
} as const;

/** The variables that point burrow at its dirs: the unit must reach the same state. */
const DIR_VARS = ["BURROW_RUNTIME_DIR", "BURROW_STATE_DIR", "BURROW_CNI_CONFIG_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME"] as const;

const systemd = defineCommand({
  meta: { name: "systemd", description: "Print a systemd unit that brings a sandbox up at boot (burrow start) and stops it" },
  args: systemdArgs,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, systemdArgs, { command: "generate systemd" });
    const name = one(p, "sandbox name or id", "generate systemd");
    const t = str(p, "time") ?? "10";
    if (!/^\d+$/.test(t)) throw new BurrowError(`invalid --time ${quote(t)}: give a whole number of seconds`, { kind: "bad-input" });
    const restart = str(p, "restart-policy") ?? "on-failure";
    if (!(SYSTEMD_RESTART as readonly string[]).includes(restart))
      throw new BurrowError(`invalid --restart-policy ${quote(restart)}: use one of ${SYSTEMD_RESTART.join(", ")}`, { kind: "bad-input" });
    const format = str(p, "format");
    if (format !== undefined && format !== "json")
      throw new BurrowError(`invalid --format ${quote(format)}: generate systemd accepts only json`, { kind: "bad-input" });
    const view = (await call("inspect", { name })) as { Id: string; Name: string; HostConfig?: { AutoRemove?: boolean } };
    if (view.HostConfig?.AutoRemove)
      throw new BurrowError(`sandbox ${view.Name} was made with --rm: it is removed when it exits, so a unit could not start it again`, { kind: "bad-input" });
    const env: Record<string, string> = {};
    for (const k of DIR_VARS) if (process.env[k]) env[k] = process.env[k]!;
    const unit = systemdUnit({
      name: view.Name,
      id: view.Id,
      binary: process.execPath,
      stopTimeout: Number(t),
      restart,
      env,
      version: version().version,
      rootful: !paths().rootless,
    });
    const file = unitName(view.Name);
    if (bool(p, "files")) {
      const path = resolve(file);
      writeFileSync(path, unit, { mode: 0o644 });
      if (format === "json") printJson({ [file]: path });
      else process.stdout.write(`${path}\n`);
      return;
    }
    if (format === "json") printJson({ [file]: unit });
    else process.stdout.write(unit);
  },
});

export default defineCommand({
  meta: { name: "generate", description: "Generate configuration for other tools (systemd units)" },
  subCommands: { systemd },
});
