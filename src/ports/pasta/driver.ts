// --network pasta: pasta binds the published host ports itself (-t/-u) and
// releases them when it exits. It cannot pick a random port nor tell which
// one is taken, so burrow binds each for a moment first (probePort), before
// pasta starts; nothing is left to do after. pasta's "all addresses" is a
// dual-stack [::] socket where the host has IPv6: the probe binds the same.
//
// `burrow port add|rm` go through pesto(1) and the control socket pasta was
// started with (--conf-path), where the installed passt has them (2025 and
// later, experimental); Debian 12's 2023 pasta has neither, and the change
// is refused in one line (docs/decisions.md "Ports added to a running sandbox").
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { BurrowError } from "../../errors.ts";
import { log } from "../../log.ts";
import { findHelper } from "../../machine/helpers.ts";
import type { PastaRecord } from "../../net/pasta/backend.ts";
import { pastaPortArgs } from "../../net/pasta/process.ts";
import type { PortRecord, Sandbox } from "../../state/sandboxes.ts";
import { cleanEnv } from "../../sys/env.ts";
import type { PortDriver } from "../driver.ts";
import { forwarderListenAddress, probePort } from "../host-port.ts";

/** How long one pesto run may take. */
const PESTO_TIMEOUT_MS = 5000;

const NO_CONTROL =
  "--network pasta binds its published ports itself, and this sandbox's pasta has no control socket to change them while it runs (pasta --conf-path and pesto: passt 2025 and later; Debian 12's pasta has neither); publish the port at `burrow run -p`, or use --network slirp4netns";

function controlOf(s: Sandbox): string | undefined {
  return (s.runtime.backend as Partial<PastaRecord> | undefined)?.control;
}

/** pesto beside the pasta binary, else on the helper path. */
function pestoPath(): string | null {
  const pasta = findHelper("pasta");
  const beside = pasta ? `${dirname(pasta)}/pesto` : null;
  return beside && existsSync(beside) ? beside : findHelper("pesto");
}

/** One pesto run: `-A` or `-D` and one port, through the sandbox's control socket. Throws BurrowError with what pesto printed. */
async function pesto(s: Sandbox, op: "-A" | "-D", p: PortRecord): Promise<void> {
  const bin = pestoPath();
  const control = controlOf(s);
  if (!bin || !control) throw new BurrowError(NO_CONTROL, { kind: "unsupported-option" });
  const proc = Bun.spawn([bin, op, ...pastaPortArgs([p]), control], { env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), PESTO_TIMEOUT_MS);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  if (code !== 0) {
    const said = `${err}${out}`.trim().split("\n").slice(-3).join("; ") || `exit status ${code}`;
    throw new BurrowError(`pesto ${op === "-A" ? "adding" : "removing"} host port ${p.hostPort}/${p.protocol} of ${s.name}: ${said}`, { kind: "pasta" });
  }
}

export function pastaPortDriver(): PortDriver {
  return {
    async prepare(specs) {
      const out = [];
      for (const p of specs) out.push({ ...p, hostPort: await probePort(p.hostIp, p.hostPort, p.protocol, forwarderListenAddress(p.hostIp)) });
      return out;
    },
    // pasta's own forwarding hands TCP and UDP clients not on loopback to the
    // sandbox with their own address (tested on Debian 12's 2023 pasta:
    // test/integration/source-ip.test.ts); loopback clients come from 127.0.0.1
    // (its splice path), and a client on the host's own address as pasta's
    // gateway. Nothing to set up: no pesto or control socket is needed for it.
    sourceAddress: () => ({ sourceAddress: "client" }),
    setup: async (_s, specs) => specs,
    teardown: async () => [],
    liveRefusal: (s) => (controlOf(s) && pestoPath() ? undefined : NO_CONTROL),
    async add(s, specs) {
      const added: PortRecord[] = [];
      try {
        for (const spec of specs) {
          // pesto reports no bind failure of pasta's: a taken port is named here first, as at run.
          const p = { ...spec, hostPort: await probePort(spec.hostIp, spec.hostPort, spec.protocol, forwarderListenAddress(spec.hostIp)) };
          await pesto(s, "-A", p);
          added.push(p);
        }
      } catch (e) {
        for (const p of added) await pesto(s, "-D", p).catch((err) => log.warn(`rollback of port add on ${s.name}: ${err.message}`));
        throw e;
      }
      return added;
    },
    async remove(s, ports) {
      const errors: Error[] = [];
      for (const p of ports) await pesto(s, "-D", p).catch((e) => errors.push(e));
      return errors;
    },
  };
}
