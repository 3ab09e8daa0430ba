// `--help` for every command: citty's usage (one-line summary, flags with
// their descriptions) plus examples, without colour unless stdout is a
// terminal and NO_COLOR is unset.
import { renderUsage, type CommandDef } from "citty";

/** Examples per command path ("" is burrow itself). Every command has at least one (test/integration/formats.test.ts checks). */
export const EXAMPLES: Record<string, string[]> = {
  "": ["burrow run --rm -p 8080:80 -- python3 -m http.server 80", "burrow ps -a", "burrow network create mynet"],
  run: [
    "burrow run --rm -- curl -sI https://example.org",
    "burrow run -d --name web -p 8080:80 --label app=web -- python3 -m http.server 80",
    "burrow run --network mynet --network-alias db -- ./server",
  ],
  exec: ["burrow exec web -- ip addr", "burrow exec web -- sh -c 'ss -ltn'"],
  ps: ["burrow ps -a", "burrow ps --filter label=app=web --filter status=running", "burrow ps --format 'table {{.Names}}\\t{{.Status}}\\t{{.Ports}}'"],
  inspect: [
    "burrow inspect web",
    "burrow inspect --format '{{.NetworkSettings.IPAddress}}' web",
    "burrow inspect --format '{{range $p, $b := .NetworkSettings.Ports}}{{$p}} {{end}}' web",
  ],
  stop: ["burrow stop web", "burrow stop -t 2 web db"],
  rm: ["burrow rm web", "burrow rm -f web db", "burrow rm -f --depend web"],
  logs: ["burrow logs web"],
  port: [
    "burrow port web",
    "burrow port web 80/tcp",
    "burrow port web --format '{{.HostPort}}'",
    "burrow port add web 8081:81 127.0.0.1::53/udp",
    "burrow port rm web 8081",
  ],
  unshare: ["burrow unshare -- id", "burrow unshare -- cat /proc/self/uid_map"],
  info: ["burrow info", "burrow info --format '{{range .Helpers}}{{.Name}} {{.Version}}\\n{{end}}'", "burrow info --format '{{.Network.Backend}}'"],
  network: ["burrow network create mynet", "burrow network ls", "burrow network rm mynet"],
  "network create": ["burrow network create mynet", "burrow network create --subnet 10.90.0.0/24 --label team=a mynet"],
  "network ls": [
    "burrow network ls",
    "burrow network ls --filter driver=bridge --format '{{.Name}}'",
    "burrow network ls --format 'table {{.Name}}\\t{{.Driver}}\\t{{.Labels}}'",
  ],
  "network list": ["burrow network list -q"],
  "network inspect": ["burrow network inspect mynet", "burrow network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}' mynet"],
  "network rm": ["burrow network rm mynet", "burrow network rm -f mynet"],
  "network remove": ["burrow network remove mynet"],
  "network prune": ["burrow network prune"],
  "network connect": ["burrow network connect --alias api mynet web"],
  "network disconnect": ["burrow network disconnect mynet web"],
  "network reload": ["burrow network reload --all", "burrow network reload web"],
  doctor: ["burrow doctor", "burrow doctor --format json"],
  system: ["burrow system recover"],
  "system recover": ["burrow system recover", "burrow system recover --format json"],
  completion: ["burrow completion bash > ~/.local/share/bash-completion/completions/burrow", "burrow completion fish > ~/.config/fish/completions/burrow.fish"],
  // Commands of issue 9 items 3-4, landing from another branch.
  start: ["burrow start web"],
  restart: ["burrow restart web"],
  wait: ["burrow wait web"],
  generate: ["burrow generate systemd web"],
  "generate systemd": ["burrow generate systemd web > ~/.config/systemd/user/burrow-web.service"],
  events: [
    "burrow events",
    "burrow events --stream=false --since 10m --filter type=network",
    "burrow events --format '{{.Time}} {{.Type}} {{.Status}} {{.Name}}'",
  ],
  stats: ["burrow stats", "burrow stats --no-stream web", "burrow stats --no-stream --format '{{.Name}} {{.MemUsage}}'"],
};

/** Whether output to this stream may carry colour: a terminal, and no NO_COLOR. */
export function colorAllowed(stream: { isTTY?: boolean } = process.stdout): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR;
}

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

export async function printHelp(cmd: CommandDef<any>, parent: CommandDef<any> | undefined, path: string): Promise<void> {
  let text = await renderUsage(cmd, parent);
  const examples = EXAMPLES[path] ?? [];
  if (examples.length) text += `\n\nEXAMPLES\n\n${examples.map((e) => `  ${e}`).join("\n")}`;
  if (!colorAllowed()) text = text.replace(ANSI, "");
  process.stdout.write(`${text}\n\n`);
}
