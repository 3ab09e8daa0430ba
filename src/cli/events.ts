import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { list, parseStrict, str } from "./_args.ts";
import { goView, matches, parseFilters, parseTime, render } from "./_format.ts";
import { templateFormatArg } from "./_shared.ts";
import { quote } from "../quote.ts";

const args = {
  ...templateFormatArg,
  stream: { type: "string", description: "true (default): keep printing new events; false: print past events and exit" },
  filter: { type: "string", alias: "f", description: "Show only events matching KEY=VALUE: type (sandbox, network), event, sandbox, network (repeatable)" },
  since: { type: "string", description: "Show events after this time: a duration before now (10m), an RFC 3339 time or Unix seconds" },
  until: { type: "string", description: "Show events before this time (same forms as --since); streaming stops then" },
} as const;

interface Event {
  seq: number;
  time: string;
  type: string;
  id: string | null;
  name: string | null;
  attributes: Record<string, unknown>;
}

/** podman's event vocabulary: a Type (container, here sandbox; network) and a Status (create, start, died...). */
export function eventKind(e: Pick<Event, "type">): { type: "sandbox" | "network"; status: string } {
  return e.type.startsWith("network-") ? { type: "network", status: e.type.slice("network-".length) } : { type: "sandbox", status: e.type };
}

function eventView(e: Event) {
  const k = eventKind(e);
  const ms = Date.parse(e.time);
  return goView(
    {
      ID: e.id ?? "",
      Name: e.name ?? (typeof e.attributes.network === "string" ? e.attributes.network : ""),
      Type: k.type,
      Status: k.status,
      Time: e.time,
      TimeNano: ms * 1e6,
      Network: typeof e.attributes.network === "string" ? e.attributes.network : "",
      Attributes: Object.fromEntries(Object.entries(e.attributes).map(([a, b]) => [a, String(b)])),
    },
    "events.Event",
    ["Attributes"],
  );
}

const FILTERS = ["type", "event", "sandbox", "network"];

export default defineCommand({
  meta: { name: "events", description: "Print sandbox and network events (like podman events)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { repeatable: ["filter"], command: "events" });
    const stream = str(p, "stream") ?? "true";
    if (stream !== "true" && stream !== "false") throw new BurrowError(`--stream takes true or false, not ${quote(stream)}`, { kind: "bad-input" });
    const filters = parseFilters(list(p, "filter"), FILTERS, "events");
    for (const t of filters.get("type") ?? [])
      if (!["sandbox", "container", "network"].includes(t))
        throw new BurrowError(`invalid filter type=${t}: valid types are sandbox (or container) and network`, { kind: "bad-input" });
    const sinceRaw = str(p, "since");
    const untilRaw = str(p, "until");
    const since = sinceRaw === undefined ? -Infinity : parseTime(sinceRaw, "--since");
    const until = untilRaw === undefined ? Infinity : parseTime(untilRaw, "--until");
    const format = str(p, "format");
    // A template that does not parse fails before anything is printed.
    if (format && format !== "json") render(format, []);
    const wanted = (e: Event) => {
      const t = Date.parse(e.time);
      if (t < since || t > until) return false;
      const k = eventKind(e);
      return matches(filters, (key, v) => {
        switch (key) {
          case "type":
            return k.type === (v === "container" ? "sandbox" : v);
          case "event":
            return k.status === v || e.type === v;
          case "sandbox":
            return k.type === "sandbox" && (e.name === v || (e.id?.startsWith(v) ?? false));
          default:
            return e.attributes.network === v;
        }
      });
    };
    let seq = 0;
    for (;;) {
      const events = ((await call("events", { since: seq })) as Event[]).filter((e) => {
        seq = Math.max(seq, e.seq);
        return wanted(e);
      });
      let out = "";
      if (format === "json") for (const e of events) out += `${JSON.stringify(e)}\n`;
      else if (format) out = render(format, events.map(eventView));
      else
        for (const e of events)
          out += `${e.time} ${e.type}${e.id ? ` ${e.id.slice(0, 12)}` : ""}${
            e.name
              ? ` (name=${e.name}${Object.entries(e.attributes)
                  .map(([k, v]) => `, ${k}=${v}`)
                  .join("")})`
              : ""
          }\n`;
      process.stdout.write(out);
      if (stream === "false" || Date.now() > until) return;
      await Bun.sleep(250);
    }
  },
});
