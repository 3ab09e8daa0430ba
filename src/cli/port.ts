import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { formatHostAddress, formatPortLines, type PortMapping } from "../ports/spec.ts";
import { parseStrict, str } from "./_args.ts";
import { goView, render } from "./_format.ts";
import { templateFormatArg, printJson } from "./_shared.ts";

const args = { ...templateFormatArg } as const;

export default defineCommand({
  meta: { name: "port", description: "List a sandbox's published ports: burrow port NAME [PORT[/PROTO]]" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "port" });
    const [name, wanted] = p.positionals;
    if (!name || p.positionals.length > 2) throw new BurrowError(`usage: burrow port NAME [PORT[/PROTO]]`, { kind: "bad-input" });
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
