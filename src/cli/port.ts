import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { formatHostAddress, formatPortLine, formatPortLines, type PortMapping } from "../ports/spec.ts";
import { parseStrict, str } from "./_args.ts";
import { goView, render } from "./_format.ts";
import { templateFormatArg, printJson } from "./_shared.ts";

const args = { ...templateFormatArg } as const;

const USAGE = "burrow port NAME [PORT[/PROTO]] | port add NAME [IP:][HOST:]CTR[/PROTO]... | port rm NAME [IP:]HOST:CTR[/PROTO]|HOST[/PROTO]...";

/**
 * `port add|rm NAME SPEC...`. Not citty subcommands: `burrow port add` and
 * `burrow port add 80` still list the ports of a sandbox named "add", as
 * they always did; a change needs a name and at least one port after the verb.
 */
function changeOf(positionals: string[]): "add" | "rm" | undefined {
  const [verb] = positionals;
  if (verb !== "add" && verb !== "rm") return undefined;
  if (positionals.length === 1) return undefined;
  if (positionals.length === 2 && /^\d+(?:\/(?:tcp|udp))?$/.test(positionals[1]!)) return undefined;
  return verb;
}

async function change(verb: "add" | "rm", positionals: string[], format: string | undefined): Promise<void> {
  const [, name, ...ports] = positionals;
  if (!name || !ports.length) throw new BurrowError(`"burrow port ${verb}" needs a sandbox name and at least one port: ${USAGE}`, { kind: "bad-input" });
  // Before the change: a refused --format must leave the ports as they were.
  if (format !== undefined && format !== "json")
    throw new BurrowError(`invalid --format ${JSON.stringify(format)} for "burrow port ${verb}": only json`, { kind: "bad-input" });
  const r = await call(verb === "add" ? "portAdd" : "portRm", { name, ports });
  if (format === "json") return printJson(r.ports);
  // The same lines as `burrow port NAME`: what was published or taken off.
  for (const m of r.ports) process.stdout.write(`${formatPortLine(m)}\n`);
}

export default defineCommand({
  meta: { name: "port", description: `List, add or remove a sandbox's published ports: ${USAGE}` },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "port" });
    const verb = changeOf(p.positionals);
    if (verb) return change(verb, p.positionals, str(p, "format"));
    const [name, wanted] = p.positionals;
    if (!name || p.positionals.length > 2) throw new BurrowError(`usage: ${USAGE}`, { kind: "bad-input" });
    const format = str(p, "format");
    const { ports } = (await call("port", { name })) as { ports: PortMapping[] };
    // formatPortLines checks the PORT[/PROTO] filter and says when nothing matches.
    const lines = formatPortLines(ports, wanted);
    if (format === undefined) {
      for (const l of lines) process.stdout.write(`${l}\n`);
      return;
    }
    const hits =
      wanted === undefined
        ? ports
        : ports.filter((m) => lines.includes(formatHostAddress(m)) && `${m.containerPort}/${m.protocol}` === (wanted.includes("/") ? wanted : `${wanted}/tcp`));
    if (format === "json") return printJson(hits);
    const rows = hits.map((m) =>
      goView(
        { ContainerPort: m.containerPort, Protocol: m.protocol, HostIP: m.hostIp || "0.0.0.0", HostPort: m.hostPort, HostAddress: formatHostAddress(m) },
        "port.Mapping",
      ),
    );
    process.stdout.write(render(format, rows, { defaultTable: "table {{.ContainerPort}}/{{.Protocol}}\t{{.HostAddress}}" }));
  },
});
