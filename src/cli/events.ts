import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { parseStrict, str } from "./_args.ts";
import { formatArg } from "./_shared.ts";

const args = {
  ...formatArg,
  stream: { type: "string", description: "true (default): keep printing new events; false: print past events and exit" },
} as const;

interface Event {
  seq: number;
  time: string;
  type: string;
  id: string | null;
  name: string | null;
  attributes: Record<string, unknown>;
}

export default defineCommand({
  meta: { name: "events", description: "Print sandbox and network events (like podman events)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "events" });
    const stream = str(p, "stream") ?? "true";
    if (stream !== "true" && stream !== "false") throw new BurrowError(`--stream takes true or false, not "${stream}"`, { kind: "bad-input" });
    const json = str(p, "format") === "json";
    let since = 0;
    for (;;) {
      const events: Event[] = await call("events", { since });
      for (const e of events) {
        since = e.seq;
        if (json) process.stdout.write(`${JSON.stringify(e)}\n`);
        else process.stdout.write(`${e.time} ${e.type}${e.id ? ` ${e.id.slice(0, 12)}` : ""}${e.name ? ` (name=${e.name}${Object.entries(e.attributes).map(([k, v]) => `, ${k}=${v}`).join("")})` : ""}\n`);
      }
      if (stream === "false") return;
      await Bun.sleep(250);
    }
  },
});
