import { defineCommand } from "./_command.ts";
import { foregroundLoader } from "./_load-foreground.ts";
import type { EarlyStart } from "./_foreground.ts";
import { call, notify } from "../client/client.ts";
import { log } from "../log.ts";
import { BurrowError, EXIT } from "../errors.ts";
import { bool, list, parseLabels, parseStrict, str } from "./_args.ts";
import { processArgs, processOptions, processRepeatable } from "./_process-flags.ts";
import { spinWhile } from "./_spinner.ts";
import { guardOutput } from "./_output.ts";
import { checkRestartRequest } from "../sandbox/restart-policy.ts";
import { splitCapabilityList } from "../sandbox/capabilities.ts";
import { hasEgressFlags } from "../egress/flags.ts";
import { enterFifo, resolvePaths } from "../paths.ts";
import { forgetEnterFifo, makeEnterFifo } from "../client/enter-fifo.ts";

export const runArgs = {
  detach: { type: "boolean", alias: "d", description: "Run in the background and print the sandbox id" },
  rm: { type: "boolean", description: "Remove the sandbox when its command exits" },
  name: { type: "string", description: "Name of the sandbox" },
  network: {
    type: "string",
    alias: "net",
    description: "Network mode: none, host, slirp4netns[:OPT=V,...], pasta, bridge, NAME[,NAME] (repeatable for networks), container:NAME, ns:PATH",
  },
  publish: { type: "string", alias: "p", description: "Publish a port: [IP:][HOSTPORT:]CTRPORT[/tcp|udp] (repeatable)" },
  ip: { type: "string", description: "Static IPv4 address on the first bridge network" },
  "mac-address": { type: "string", description: "Static MAC address on the first bridge network" },
  "network-alias": { type: "string", description: "DNS alias on bridge networks (repeatable)" },
  dns: { type: "string", description: "Nameserver for the sandbox's resolv.conf (repeatable)" },
  hostname: { type: "string", description: "Hostname inside the sandbox (default: its name)" },
  label: { type: "string", alias: "l", description: "Label KEY=VALUE, shown by inspect and matched by ps --filter label= (repeatable)" },
  restart: { type: "string", description: "Restart policy with -d: no, on-failure[:N], always, unless-stopped" },
  "cap-add": { type: "string", description: "Give the command a capability beyond the default set: NET_ADMIN, SYS_PTRACE, ..., or ALL (repeatable)" },
  "cap-drop": { type: "string", description: "Take a capability from the default set, or ALL (repeatable)" },
  privileged: { type: "boolean", description: "Every capability and no Landlock confinement: the command may reach other sandboxes" },
  accelerate: { type: "boolean", description: "TCP connections out of the sandbox through host sockets, at host speed (docs/accelerate.md)" },
  "allow-host": {
    type: "string",
    description:
      "Egress: only allowed destinations are reachable; this name (or *.name) resolves and its addresses are: NAME[:PORTS][/tcp|udp] (repeatable; docs/egress.md)",
  },
  "allow-cidr": { type: "string", description: "Egress: these addresses are reachable: CIDR, address, private or host, [:PORTS][/tcp|udp] (repeatable)" },
  "deny-cidr": { type: "string", description: "Egress: these addresses are not reachable, whatever allows them (same forms as --allow-cidr; repeatable)" },
  "egress-log-only": { type: "boolean", description: "Egress: report every would-be refusal as an event, refuse nothing" },
  ...processArgs,
} as const;

export default defineCommand({
  meta: { name: "run", description: "Run a command in a new network sandbox" },
  args: runArgs,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, runArgs, {
      repeatable: ["network", "publish", "network-alias", "dns", "label", "cap-add", "cap-drop", "allow-host", "allow-cidr", "deny-cidr", ...processRepeatable],
      stopAtPositional: true,
      command: "run",
    });
    if (!p.rest.length) throw new BurrowError(`"burrow run" needs a command, as in: burrow run -- COMMAND [ARG...]`, { kind: "bad-input" });
    const detach = bool(p, "detach");
    checkRestartRequest({ restart: str(p, "restart"), rm: bool(p, "rm"), detach });
    const po = processOptions(p, { detach, command: "run" });
    // Refused here in one line (exit 125) before anything is asked of the daemon, which checks the policy again.
    // Its module (schemas, ranges) is loaded only when an egress flag is given: ~1 ms of every other run's start.
    const flags = { allowHost: list(p, "allow-host"), allowCidr: list(p, "allow-cidr"), denyCidr: list(p, "deny-cidr"), logOnly: bool(p, "egress-log-only") };
    const egress = hasEgressFlags(flags) ? (await import("../egress/policy.ts")).parseEgressFlags(flags) : null;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "BURROW_PATHS") env[k] = v;
    // Loads while the daemon creates the sandbox (src/cli/_load-foreground.ts),
    // and the command's enter step starts meanwhile, waiting for the reply
    // (startAhead: the spawn is off the reply's path).
    const foreground = detach ? null : foregroundLoader();
    // One id for every attempt: call() sends the create again after a
    // broken connection, and the daemon answers a retry with the first
    // attempt's result instead of meeting its half-made sandbox. Web
    // Crypto's: node:crypto costs a CLI start ~5 ms to load.
    const requestId = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
    // The enter step started ahead reads its options from a FIFO named after
    // the request, made as soon as the request is out: the daemon writes them
    // there at the end of the create, so the command starts while the reply
    // is on its way (docs/decisions.md "The daemon sends the enter step its
    // options"). Not with -t or --accelerate, which are not started ahead.
    const fifo = foreground && !po.tty && !bool(p, "accelerate") ? enterFifo(resolvePaths(), requestId) : null;
    let ahead: Promise<EarlyStart | null> | null = null;
    // Whether the enter step reads the FIFO at that name. A create the
    // daemon finished before the CLI had both its ends open found the name
    // (and wrote there, then removed it: `entered`) while the CLI fell back
    // to a pipe of its own, which only the CLI writes.
    let fifoHeld = false;
    const onSent = () => {
      if (ahead) return;
      const ends = fifo ? makeEnterFifo(fifo) : null;
      fifoHeld = ends !== null;
      ahead = foreground!()
        .then((m) => m.startAhead(p.rest, po, bool(p, "accelerate"), ends))
        // One that cannot start is spawned after the reply, which says why.
        .catch(() => null);
    };
    const callOff = async () => {
      const early = await ahead;
      if (early) await (await foreground!()).cancelAhead(early);
    };
    const created = await spinWhile(
      "starting the sandbox",
      call(
        "create",
        {
          name: str(p, "name"),
          hostname: str(p, "hostname"),
          // Repeated, as podman takes it (--network a --network b), or comma-separated: one list.
          network: list(p, "network").join(",") || undefined,
          ports: list(p, "publish"),
          dns: list(p, "dns"),
          ip: str(p, "ip"),
          mac: str(p, "mac-address"),
          aliases: list(p, "network-alias"),
          rm: bool(p, "rm"),
          detach,
          restart: str(p, "restart"),
          argv: p.rest,
          cwd: po.workdir ?? process.cwd(),
          // The daemon needs the environment to start the command itself: now
          // (-d), or later with `burrow start` (a kept foreground sandbox).
          // A foreground --rm sandbox can never be started again: nothing sent.
          env: detach || !bool(p, "rm") ? { ...env, ...po.env } : {},
          labels: parseLabels(list(p, "label")),
          ...(po.tty ? { tty: true } : {}),
          ...(po.workdir ? { workdir: po.workdir } : {}),
          ...(po.user ? { user: po.user } : {}),
          capAdd: splitCapabilityList(list(p, "cap-add")),
          capDrop: splitCapabilityList(list(p, "cap-drop")),
          privileged: bool(p, "privileged"),
          accelerate: bool(p, "accelerate"),
          ...(egress ? { egress } : {}),
          ...(fifo ? { enterFifo: true as const } : {}),
          requestId,
        },
        foreground ? { onSent } : {},
      ),
    )
      .catch(async (e) => {
        await callOff();
        throw e;
      })
      // Its name is the create's business only: the open ends keep the FIFO (the daemon removes it too once it wrote).
      .finally(() => {
        if (fifo) forgetEnterFifo(fifo);
      });
    if (detach) {
      guardOutput();
      process.stdout.write(`${created.id}\n`);
      return;
    }
    if (!created.enter) {
      await callOff();
      throw new BurrowError(`sandbox ${created.name} (${created.id.slice(0, 12)}) was created, but it has exited and is gone`, { kind: "not-running" });
    }
    let pid: number | undefined;
    /** The started report's outcome: true once the daemon has taken it in. */
    let started: Promise<boolean> = Promise.resolve(false);
    const { runForeground, madeNothingSince } = await foreground!();
    const early = await ahead;
    // The daemon wrote the command's options into the FIFO the enter step
    // started ahead reads: the reply's target goes nowhere, so it is not
    // checked (replies.ts MAKERS.create); otherwise it is, before the spawn.
    let target: Parameters<typeof runForeground>[0] = null;
    if (!(created.entered === true && fifoHeld && early)) {
      try {
        target = (await import("../replies.ts")).enterTargetOf(created.enter);
      } catch (e) {
        await callOff();
        // The sandbox was made and its command will never run: reported as
        // ended, so that it is released (and removed with --rm), not left
        // created. Best effort: this daemon's replies are not what we expect.
        await call("exited", { id: created.id, exitCode: EXIT.burrow }).catch(() => {});
        throw e;
      }
    }
    const code = await runForeground(
      target,
      p.rest,
      po,
      async (childPid) => {
        pid = childPid;
        started = call("started", { id: created.id, pid }).then(
          () => true,
          () => false,
        );
      },
      early,
    );
    // The exit goes out without waiting for started's reply (a round trip
    // of every short command): it carries the pid, and the daemon marks the
    // sandbox started first when the started report has not come yet.
    const exit = { id: created.id, exitCode: code, ...(pid !== undefined ? { pid } : {}) };
    // Its answer says that the command's processes and the sandbox's host
    // ports are gone. A sandbox that holds nothing on the host (no -p, no
    // --accelerate listeners, no egress resolver) and whose command made no
    // process has nothing left for it: the report goes out and the CLI ends
    // without waiting (~0.4 ms of every such run; the daemon serves no later
    // request before it has taken the report in: docs/decisions.md "The exit
    // report's answer, when nothing needs it"). Only once the daemon has
    // answered the started report (by then, nearly always): a sandbox it
    // knows running with a dead command is released by its reap within a
    // second, should the report itself be refused (another user's
    // connection open at that moment) or lost. The pids are looked at
    // first, right after the command's exit: every process made anywhere
    // in the meantime makes the answer no.
    const holdsNothing = !list(p, "publish").length && !bool(p, "accelerate") && !egress;
    if (holdsNothing && pid !== undefined && madeNothingSince(pid) && (await started) && notify("exited", exit))
      log.debug(`exit of ${created.name} reported, its answer not waited for`);
    else await Promise.all([call("exited", exit), started]);
    (await foreground!()).finishForeground(code);
  },
});
