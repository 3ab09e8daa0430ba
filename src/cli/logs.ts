import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { printLog } from "../client/logs.ts";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";
import { bool, one, parseStrict, str } from "./_args.ts";
import { parseTime } from "./_format.ts";

const args = {
  follow: { type: "boolean", alias: "f", description: "Keep printing new output until the sandbox ends" },
  tail: { type: "string", description: "Print only the last N lines (-1: all, the default)" },
  since: { type: "string", description: "Show output written after this time: a duration before now (10m), an RFC 3339 time or Unix seconds" },
  until: { type: "string", description: "Show output written before this time (same forms as --since)" },
  timestamps: { type: "boolean", alias: "t", description: "Put the time each line was written before it" },
} as const;

/** podman's --tail: a count of lines, -1 for all. */
export function parseTail(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^(-1|\d+)$/.test(raw)) throw new BurrowError(`invalid --tail ${quote(raw)}: give a number of lines, or -1 for all`, { kind: "bad-input" });
  const n = Number(raw);
  return n === -1 ? undefined : n;
}

export default defineCommand({
  meta: { name: "logs", description: "Print the output of a detached sandbox" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "logs" });
    const name = one(p, "sandbox name or id", "logs");
    const tail = parseTail(str(p, "tail"));
    const sinceRaw = str(p, "since");
    const untilRaw = str(p, "until");
    const since = sinceRaw === undefined ? undefined : parseTime(sinceRaw, "--since");
    const until = untilRaw === undefined ? undefined : parseTime(untilRaw, "--until");
    const { path } = await call("logs", { name });
    // -f ends when the sandbox does, as podman's: the daemon's `wait` answers then.
    const follow = bool(p, "follow") ? call("wait", { name }) : undefined;
    await printLog(path, { tail, since, until, timestamps: bool(p, "timestamps"), follow });
  },
});
