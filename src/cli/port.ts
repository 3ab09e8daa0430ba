import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { parseStrict } from "./_args.ts";
import type { PortRecord } from "../state/sandboxes.ts";

const args = {} as const;

function hostText(p: PortRecord): string {
  const ip = p.hostIp || "0.0.0.0";
  return ip.includes(":") ? `[${ip}]:${p.hostPort}` : `${ip}:${p.hostPort}`;
}

export default defineCommand({
  meta: { name: "port", description: "List a sandbox's published ports: burrow port NAME [PORT[/PROTO]]" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "port" });
    const [name, wanted] = p.positionals;
    if (!name || p.positionals.length > 2) throw new BurrowError(`usage: burrow port NAME [PORT[/PROTO]]`, { kind: "bad-input" });
    const { ports } = (await call("port", { name })) as { ports: PortRecord[] };
    if (!wanted) {
      for (const m of ports) process.stdout.write(`${m.containerPort}/${m.protocol} -> ${hostText(m)}\n`);
      return;
    }
    const [port, proto = "tcp"] = wanted.split("/");
    const hits = ports.filter((m) => String(m.containerPort) === port && m.protocol === proto);
    if (!hits.length) throw new BurrowError(`failed to find published port "${port}/${proto}"`, { kind: "not-found" });
    for (const m of hits) process.stdout.write(`${hostText(m)}\n`);
  },
});
