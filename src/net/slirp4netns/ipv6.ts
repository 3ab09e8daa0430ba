// slirp4netns's IPv6 address (enable_ipv6): SLAAC on tap0 from slirp4netns's
// router advertisement, so it is known only once it is there. With the
// sandbox netns's sysctls of src/net/slirp4netns/backend.ts (no duplicate
// address detection, no solicitation delay) it appears a few ms after
// slirp4netns is ready; setup waits for it and records it, so the builtin
// forwarder reaches the sandbox over IPv6 from the first connection.
// Daemon main thread (which never enters a sandbox's netns: nsenter does).
import { cleanEnv } from "../../sys/env.ts";
import { formatIp } from "../cni/ip.ts";

const IFA_F_TENTATIVE = 0x40;
const IFA_F_DADFAILED = 0x08;

/** From /proc/net/if_inet6's text: the first global address of `dev` that is usable (not tentative, not failed). Pure. */
export function usableGlobalIPv6(ifInet6: string, dev: string): string | null {
  for (const line of ifInet6.split("\n")) {
    const [hex, , , scope, flags, name] = line.trim().split(/\s+/);
    if (name !== dev || scope !== "00" || !hex || !/^[0-9a-f]{32}$/.test(hex)) continue;
    if (Number.parseInt(flags ?? "0", 16) & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) continue;
    return formatIp(6, BigInt(`0x${hex}`));
  }
  return null;
}

/** Polls the netns's /proc/net/if_inet6 (through nsenter) until `dev` has a usable global address; null after `timeoutMs`. */
export async function waitForGlobalIPv6(netns: string, dev: string, timeoutMs = 1000): Promise<string | null> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    let p: Bun.Subprocess<"ignore", "pipe", "ignore">;
    try {
      p = Bun.spawn(["nsenter", `--net=${netns}`, "--", "cat", "/proc/net/if_inet6"], {
        env: cleanEnv(),
        stdin: "ignore",
        stdout: "pipe",
        stderr: "ignore",
      });
    } catch {
      return null; // no nsenter: the forwarder looks the address up per connection
    }
    const [text, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    if (code !== 0) return null; // no nsenter, or no IPv6 in this kernel: the forwarder looks it up per connection
    const address = usableGlobalIPv6(text, dev);
    if (address || performance.now() > deadline) return address;
    await Bun.sleep(2);
  }
}
