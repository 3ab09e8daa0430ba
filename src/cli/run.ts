import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { bool, list, parseStrict, str } from "./_args.ts";
import { spawnEnter, waitForeground } from "./_run-child.ts";
import { checkRestartRequest } from "../sandbox/restart-policy.ts";

export const runArgs = {
  detach: { type: "boolean", alias: "d", description: "Run in the background and print the sandbox id" },
  rm: { type: "boolean", description: "Remove the sandbox when its command exits" },
  name: { type: "string", description: "Name of the sandbox" },
  network: { type: "string", alias: "net", description: "Network mode: none, host, slirp4netns[:OPT=V,...], pasta, bridge, NAME[,NAME], container:NAME, ns:PATH" },
  publish: { type: "string", alias: "p", description: "Publish a port: [IP:][HOSTPORT:]CTRPORT[/tcp|udp] (repeatable)" },
  ip: { type: "string", description: "Static IPv4 address on the first bridge network" },
  "mac-address": { type: "string", description: "Static MAC address on the first bridge network" },
  "network-alias": { type: "string", description: "DNS alias on bridge networks (repeatable)" },
  dns: { type: "string", description: "Nameserver for the sandbox's resolv.conf (repeatable)" },
  hostname: { type: "string", description: "Hostname inside the sandbox (default: its name)" },
  restart: { type: "string", description: "Restart policy with -d: no, on-failure[:N], always, unless-stopped" },
} as const;

export default defineCommand({
  meta: { name: "run", description: "Run a command in a new network sandbox" },
  args: runArgs,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, runArgs, { repeatable: ["publish", "network-alias", "dns"], stopAtPositional: true, command: "run" });
    if (!p.rest.length) throw new BurrowError(`"burrow run" needs a command, as in: burrow run -- COMMAND [ARG...]`, { kind: "bad-input" });
    const detach = bool(p, "detach");
    checkRestartRequest({ restart: str(p, "restart"), rm: bool(p, "rm"), detach });
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "BURROW_PATHS") env[k] = v;
    const created = await call("create", {
      name: str(p, "name"),
      hostname: str(p, "hostname"),
      network: str(p, "network"),
      ports: list(p, "publish"),
      dns: list(p, "dns"),
      ip: str(p, "ip"),
      mac: str(p, "mac-address"),
      aliases: list(p, "network-alias"),
      rm: bool(p, "rm"),
      detach,
      restart: str(p, "restart"),
      argv: p.rest,
      cwd: process.cwd(),
      env: detach ? env : {},
    });
    if (detach) {
      process.stdout.write(`${created.id}\n`);
      return;
    }
    const child = spawnEnter(created.enter, p.rest);
    const started = call("started", { id: created.id, pid: child.pid }).catch(() => {});
    const code = await waitForeground(child);
    await started;
    await call("exited", { id: created.id, exitCode: code });
    process.exitCode = code;
  },
});
