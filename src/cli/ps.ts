import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { formatPortsSummary, type PortMapping } from "../ports/spec.ts";
import type { PsRow } from "../inspect/sandbox.ts";
import { bool, list, parseStrict, str } from "./_args.ts";
import { ago, goView, labelMatches, matches, nameMatches, parseFilters, printRows } from "./_format.ts";
import { templateFormatArg } from "./_shared.ts";

const args = {
  all: { type: "boolean", alias: "a", description: "Show all sandboxes, not only running ones" },
  quiet: { type: "boolean", alias: "q", description: "Print only ids" },
  filter: {
    type: "string",
    alias: "f",
    description: "Show only sandboxes matching KEY=VALUE: name, id, status, network, label (repeatable; same key ORs, different keys AND)",
  },
  latest: { type: "boolean", alias: "l", description: "Show only the sandbox created last (any state)" },
  "no-trunc": { type: "boolean", description: "Do not shorten ids and commands" },
  noheading: { type: "boolean", description: "Leave out the header line of a table" },
  ...templateFormatArg,
} as const;

const FILTERS = ["name", "id", "status", "network", "label"] as const;
const STATUSES = ["created", "running", "exited"];

export const PS_TABLE = "table {{.ID}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
/** podman's column names where they are not the split field name. */
export const PS_HEADERS = { ID: "SANDBOX ID", CreatedHuman: "CREATED", RunningFor: "CREATED" };

export function portMappings(ports: PsRow["Ports"]): PortMapping[] {
  return ports.map((p) => ({ hostIp: p.host_ip, hostPort: p.host_port, containerPort: p.container_port, protocol: p.protocol as PortMapping["protocol"] }));
}

/** The fields a ps template sees, podman's names (psReporter): .ID .Names .Status .Ports ... */
export function psView(r: PsRow, noTrunc: boolean) {
  const command = r.Command.join(" ");
  return goView(
    {
      ID: noTrunc ? r.Id : r.Id.slice(0, 12),
      Names: r.Names.join(","),
      Command: noTrunc || command.length <= 17 ? command : `${command.slice(0, 17)}...`,
      Created: r.CreatedAt,
      CreatedAt: r.CreatedAt,
      CreatedHuman: ago(r.CreatedAt),
      RunningFor: ago(r.StartedAt || r.CreatedAt).replace(/ ago$/, ""),
      StartedAt: r.StartedAt,
      Status: r.Status,
      State: r.State,
      Pid: r.Pid,
      ExitCode: r.ExitCode,
      Ports: formatPortsSummary(portMappings(r.Ports)),
      Networks: r.Networks.join(","),
      Network: r.Network,
      Labels: r.Labels,
    },
    "ps.Sandbox",
    ["Labels"],
  );
}

export default defineCommand({
  meta: { name: "ps", description: "List sandboxes" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { repeatable: ["filter"], command: "ps" });
    const filters = parseFilters(list(p, "filter"), FILTERS, "ps");
    for (const s of filters.get("status") ?? [])
      if (!STATUSES.includes(s)) throw new BurrowError(`invalid filter status=${s}: valid statuses are ${STATUSES.join(", ")}`, { kind: "bad-input" });
    const format = str(p, "format");
    // Like podman: a status filter or --latest looks at every sandbox, not only running ones.
    let rows: PsRow[] = await call("list", { all: bool(p, "all") || bool(p, "latest") || filters.has("status") });
    rows = rows.filter((r) =>
      matches(filters, (key, v) => {
        switch (key) {
          case "name":
            return r.Names.some((n) => nameMatches(n, v));
          case "id":
            return r.Id.startsWith(v);
          case "status":
            return r.State === v;
          case "network":
            return r.Networks.includes(v) || r.Network === v;
          default:
            return labelMatches(r.Labels, v);
        }
      }),
    );
    if (bool(p, "latest")) rows = rows.toSorted((a, b) => Date.parse(b.CreatedAt) - Date.parse(a.CreatedAt)).slice(0, 1);
    if (bool(p, "quiet")) {
      for (const r of rows) process.stdout.write(`${bool(p, "no-trunc") ? r.Id : r.Id.slice(0, 12)}\n`);
      return;
    }
    printRows(
      format,
      rows.map((r) => psView(r, bool(p, "no-trunc"))),
      rows,
      { defaultTable: PS_TABLE, headers: PS_HEADERS, noHeading: bool(p, "noheading") },
    );
  },
});
