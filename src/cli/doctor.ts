// `burrow doctor`: what this machine lacks for burrow, and how to fix it on
// this distribution. The probes live in src/machine/doctor.ts; no daemon, no root.
import { defineCommand } from "./_command.ts";
import { runChecks } from "../machine/doctor.ts";
import { parseStrict, str } from "./_args.ts";
import { formatArg, printJson } from "./_shared.ts";
import { EXIT } from "../errors.ts";

const args = { ...formatArg } as const;

export default defineCommand({
  meta: { name: "doctor", description: "Check what this machine lacks for burrow, and say how to fix it" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "doctor" });
    const checks = runChecks();
    const failed = checks.some((c) => c.level === "fail");
    if (str(p, "format") === "json") printJson({ ok: !failed, checks });
    else {
      const mark = { ok: "ok  ", warn: "WARN", fail: "FAIL" } as const;
      const width = Math.max(...checks.map((c) => c.check.length));
      for (const c of checks) {
        process.stdout.write(`${mark[c.level]}  ${c.check.padEnd(width)}  ${c.detail}\n`);
        if (c.fix && c.level !== "ok") process.stdout.write(`      ${" ".repeat(width)}  fix: ${c.fix}\n`);
      }
    }
    if (failed) process.exitCode = EXIT.burrow;
  },
});
