// `burrow network ...`: one subcommand group; each subcommand only parses and prints.
import type { ArgsDef } from "citty";
import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { bool, list, names, parseStrict, str } from "./_args.ts";
import { goView, labelMatches, matches, nameMatches, parseFilters, render } from "./_format.ts";
import { templateFormatArg, printJson } from "./_shared.ts";
import { parseLabels } from "./_args.ts";

function sub(name: string, description: string, args: ArgsDef, run: (rawArgs: string[]) => Promise<void>) {
  return defineCommand({
    meta: { name, description },
    args,
    run: ({ rawArgs }) => run(rawArgs),
  });
}

const createArgs = {
  subnet: { type: "string", description: "Subnet in CIDR form (repeatable)" },
  gateway: { type: "string", description: "Gateway address (needs --subnet)" },
  "ip-range": { type: "string", description: "Allocate addresses from this range only: a CIDR inside --subnet, or START-END (netavark networks)" },
  ipv6: { type: "boolean", description: "Add an IPv6 subnet too" },
  internal: { type: "boolean", description: "No outbound connectivity (no gateway, no masquerade)" },
  "disable-dns": { type: "boolean", description: "No DNS for names and aliases on this network" },
  label: { type: "string", description: "Label KEY=VALUE (repeatable)" },
  driver: { type: "string", alias: "d", description: "bridge (default) or macvlan" },
} as const satisfies ArgsDef;

const create = sub("create", "Create a bridge network (podman's network file, or a CNI conflist on CNI)", createArgs, async (raw) => {
  const p = parseStrict(raw, createArgs, { repeatable: ["subnet", "label"], command: "network create" });
  if (p.positionals.length > 1) throw new BurrowError(`"burrow network create" takes at most one network name`, { kind: "bad-input" });
  const labels = parseLabels(list(p, "label"));
  const r = await call("networkCreate", {
    name: p.positionals[0],
    driver: str(p, "driver"),
    subnets: list(p, "subnet"),
    gateway: str(p, "gateway"),
    ipRange: str(p, "ip-range"),
    ipv6: bool(p, "ipv6"),
    internal: bool(p, "internal"),
    disableDns: bool(p, "disable-dns"),
    labels,
  });
  for (const w of r.warnings ?? []) process.stderr.write(`WARN: ${w}\n`);
  process.stdout.write(`${r.name}\n`);
});

const lsArgs = {
  ...templateFormatArg,
  quiet: { type: "boolean", alias: "q", description: "Print only network names" },
  noheading: { type: "boolean", description: "Leave out the header line" },
  filter: {
    type: "string",
    alias: "f",
    description: "Show only networks matching KEY=VALUE: name, id, driver, label (repeatable; same key ORs, different keys AND)",
  },
  "no-trunc": { type: "boolean", description: "Show full network ids" },
} as const satisfies ArgsDef;

interface NetworkData {
  name: string;
  id: string;
  driver: string;
  network_interface?: string;
  created?: string;
  subnets?: Array<{ subnet: string; gateway?: string }>;
  ipv6_enabled?: boolean;
  internal?: boolean;
  dns_enabled?: boolean;
  labels?: Record<string, string>;
  backend?: string;
}

/** The fields a network template sees, podman's names (types.Network): .Name .ID .Driver .Labels ... */
function networkView(n: NetworkData, noTrunc: boolean) {
  return goView(
    {
      ID: noTrunc ? n.id : n.id.slice(0, 12),
      Name: n.name,
      Driver: n.driver,
      NetworkInterface: n.network_interface ?? "",
      Created: n.created ?? "",
      Subnets: (n.subnets ?? []).map((s) => ({ Subnet: s.subnet, Gateway: s.gateway ?? "" })),
      IPv6Enabled: n.ipv6_enabled ?? false,
      Internal: n.internal ?? false,
      DNSEnabled: n.dns_enabled ?? false,
      Labels: n.labels ?? {},
      // Set only when networks of both backends are listed (src/net/registry.ts).
      Backend: n.backend ?? "",
    },
    "network.Network",
    ["Labels"],
  );
}

const NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}";

const ls = sub("ls", "List networks", lsArgs, async (raw) => {
  const p = parseStrict(raw, lsArgs, { repeatable: ["filter"], command: "network ls" });
  const filters = parseFilters(list(p, "filter"), ["name", "id", "driver", "label"], "network ls");
  const format = str(p, "format");
  const r = await call("networkList", {});
  const networks = (r.networks as NetworkData[]).filter((n) =>
    matches(filters, (key, v) =>
      key === "name" ? nameMatches(n.name, v) : key === "id" ? n.id.startsWith(v) : key === "driver" ? n.driver === v : labelMatches(n.labels, v),
    ),
  );
  for (const w of r.warnings ?? []) process.stderr.write(`WARN: ${w}\n`);
  if (format === "json") return printJson(networks);
  if (bool(p, "quiet")) {
    process.stdout.write(networks.map((n) => `${n.name}\n`).join(""));
    return;
  }
  const views = networks.map((n) => networkView(n, bool(p, "no-trunc")));
  // Networks of both backends (a CNI user who also has podman 4-6's files): say whose each is.
  const table = networks.some((n) => n.backend) ? `${NETWORK_TABLE}\t{{.Backend}}` : NETWORK_TABLE;
  process.stdout.write(render(format ?? "table", views, { defaultTable: table, headers: { ID: "NETWORK ID" }, noHeading: bool(p, "noheading") }));
});

const inspectArgs = { ...templateFormatArg } as const satisfies ArgsDef;
const inspect = sub("inspect", "Show networks' configuration (network file or conflist), or their fields through a Go template", inspectArgs, async (raw) => {
  const p = parseStrict(raw, inspectArgs, { command: "network inspect" });
  const format = str(p, "format");
  const out: Array<Record<string, unknown>> = [];
  for (const name of names(p, "network inspect", "network name")) out.push(await call("networkInspect", { name }));
  if (!format || format === "json") return printJson(out);
  // Templates see podman's field names (.Name, .ID, .Subnets...) and the conflist as .Conflist.
  const all = (await call("networkList", {})).networks as NetworkData[];
  const views = out.map((c) => {
    const n = all.find((x) => x.name === c.name);
    return { ...(n ? networkView(n, true) : { Name: c.name }), Conflist: c };
  });
  process.stdout.write(
    render(
      format,
      views.map((v) => goView(v, "network.Network", ["Labels", "Conflist"])),
    ),
  );
});

const rmArgs = { force: { type: "boolean", alias: "f", description: "Disconnect sandboxes that use the network first" } } as const satisfies ArgsDef;
const rm = sub("rm", "Remove networks", rmArgs, async (raw) => {
  const p = parseStrict(raw, rmArgs, { command: "network rm" });
  const r = await call("networkRemove", { names: names(p, "network rm", "network name"), force: bool(p, "force") });
  for (const n of r.removed) process.stdout.write(`${n}\n`);
});

const pruneArgs = { force: { type: "boolean", alias: "f", description: "Do not ask (burrow never asks)" } } as const satisfies ArgsDef;
const prune = sub("prune", "Remove networks no sandbox uses", pruneArgs, async (raw) => {
  parseStrict(raw, pruneArgs, { command: "network prune" });
  const r = await call("networkPrune", {});
  for (const n of r.removed) process.stdout.write(`${n}\n`);
});

const connectArgs = { alias: { type: "string", description: "DNS alias on this network (repeatable)" } } as const satisfies ArgsDef;
const connect = sub("connect", "Connect a running sandbox to a network: network connect NET NAME", connectArgs, async (raw) => {
  const p = parseStrict(raw, connectArgs, { repeatable: ["alias"], command: "network connect" });
  if (p.positionals.length !== 2) throw new BurrowError(`usage: burrow network connect [--alias A]... NETWORK SANDBOX`, { kind: "bad-input" });
  await call("networkConnect", { network: p.positionals[0]!, sandbox: p.positionals[1]!, aliases: list(p, "alias") });
});

const disconnectArgs = {} as const satisfies ArgsDef;
const disconnect = sub("disconnect", "Disconnect a sandbox from a network: network disconnect NET NAME", disconnectArgs, async (raw) => {
  const p = parseStrict(raw, disconnectArgs, { command: "network disconnect" });
  if (p.positionals.length !== 2) throw new BurrowError(`usage: burrow network disconnect NETWORK SANDBOX`, { kind: "bad-input" });
  await call("networkDisconnect", { network: p.positionals[0]!, sandbox: p.positionals[1]! });
});

const reloadArgs = { all: { type: "boolean", alias: "a", description: "Reload every running sandbox on a bridge network" } } as const satisfies ArgsDef;
const reload = sub("reload", "Re-create sandboxes' bridge networking, e.g. after a firewall reload", reloadArgs, async (raw) => {
  const p = parseStrict(raw, reloadArgs, { command: "network reload" });
  if (!bool(p, "all") && !p.positionals.length) throw new BurrowError(`"burrow network reload" needs sandbox names or --all`, { kind: "bad-input" });
  const r = await call("networkReload", { sandboxes: p.positionals, all: bool(p, "all") });
  for (const id of r.reloaded) process.stdout.write(`${id}\n`);
  for (const e of r.errors ?? []) process.stderr.write(`Error: ${e}\n`);
  if (r.errors?.length) process.exitCode = 125;
});

export default defineCommand({
  meta: { name: "network", description: "Manage bridge networks" },
  subCommands: { create, ls, list: ls, inspect, rm, remove: rm, prune, connect, disconnect, reload },
});
