// What goes into a sandbox's /etc/hosts and /etc/resolv.conf, per network
// mode. Formats follow podman; the builders live in src/dns/.
import { readFileSync } from "node:fs";
import type { NetworkMode } from "../net/mode.ts";
import type { NetworkSetup } from "../net/backend.ts";

export interface EtcInput {
  mode: NetworkMode;
  hostname: string;
  name: string;
  dns: string[];
  net?: NetworkSetup;
  /** container:NAME shares the other sandbox's files, as podman does. */
  sharedDir?: string;
}

const LOCALHOST = /^(127\.|::1$|0:0:0:0:0:0:0:1$)/;

function hostResolv(): string {
  try {
    return readFileSync("/etc/resolv.conf", "utf8");
  } catch {
    return "";
  }
}

export function etcContent(input: EtcInput): { hosts: string; resolv: string } {
  if (input.sharedDir) {
    return { hosts: readFileSync(`${input.sharedDir}/hosts`, "utf8"), resolv: readFileSync(`${input.sharedDir}/resolv.conf`, "utf8") };
  }
  const addr = input.net?.hostsAddress ?? input.net?.address ?? "127.0.1.1";
  const names = input.hostname === input.name ? input.name : `${input.hostname} ${input.name}`;
  const hosts = `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${addr}\t${names}\n`;
  const lines = hostResolv().split("\n");
  const servers = input.dns.length
    ? input.dns
    : [...(input.net?.nameservers ?? []), ...lines.map((l) => l.trim().split(/\s+/)).filter((w) => w[0] === "nameserver" && w[1] && !LOCALHOST.test(w[1])).map((w) => w[1]!)];
  const keep = lines.filter((l) => /^\s*(search|options|domain)\s/.test(l));
  const resolv = [...keep, ...servers.map((s) => `nameserver ${s}`)].join("\n") + "\n";
  return { hosts, resolv };
}
