import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { names, parseStrict, str } from "./_args.ts";
import { goView, render } from "./_format.ts";
import { templateFormatArg, printJson } from "./_shared.ts";

const args = { ...templateFormatArg } as const;

/** Fields of podman's inspect shape that are Go maps (ranged in key order, no "can't evaluate field" for a missing key). */
export const INSPECT_MAPS = ["Labels", "Ports", "PortBindings", "Networks", "SourceAddresses"];

export default defineCommand({
  meta: { name: "inspect", description: "Show sandboxes' configuration and state as JSON (podman's shape), or through a Go template" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "inspect" });
    const format = str(p, "format");
    const views = [];
    for (const name of names(p, "inspect")) views.push(await call("inspect", { name }));
    if (format && format !== "json") {
      process.stdout.write(
        render(
          format,
          views.map((v) => goView(v, "inspect.Sandbox", INSPECT_MAPS)),
        ),
      );
      return;
    }
    printJson(views);
  },
});
