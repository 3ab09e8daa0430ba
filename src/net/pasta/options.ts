// The options of `--network pasta[:OPT,...]`: pasta(1) command-line
// arguments separated by commas, as podman takes them (podman 4.4+
// libpod/networking_pasta.go), e.g. `pasta:-a,10.0.2.10,--mtu,1500`.
//
// Each option is checked against the pasta options burrow knows, so a typo
// is a one-line error here instead of pasta's usage text. Options burrow
// must control itself (namespace, pid file, logging, foreground, user)
// are refused. Pure.
import { isIP } from "../../ip-syntax.ts";
import { BurrowError } from "../../errors.ts";

/** Options that take a value, long name -> short alias. */
const WITH_VALUE: Record<string, string | undefined> = {
  "--log-size": undefined,
  "--ns-ifname": "-I",
  "--pcap": "-p",
  "--mtu": "-m",
  "--address": "-a",
  "--netmask": "-n",
  "--mac-addr": "-M",
  "--gateway": "-g",
  "--interface": "-i",
  "--outbound": "-o",
  "--outbound-if4": undefined,
  "--outbound-if6": undefined,
  "--dns": "-D",
  "--search": "-S",
  "--dns-forward": undefined,
  "--tcp-ports": "-t",
  "--udp-ports": "-u",
  "--tcp-ns": "-T",
  "--udp-ns": "-U",
  "--ns-mac-addr": undefined,
  "--map-host-loopback": undefined,
  "--map-guest-addr": undefined,
  // podman passes a user's pid file on: burrow then reads pasta's pid from it.
  "--pid": "-P",
};
const FLAGS: Record<string, string | undefined> = {
  "--debug": "-d",
  "--trace": undefined,
  "--quiet": "-q",
  "--dhcp-dns": undefined,
  "--dhcp-search": undefined,
  "--no-tcp": undefined,
  "--no-udp": undefined,
  "--no-icmp": undefined,
  "--no-dhcp": undefined,
  "--no-ndp": undefined,
  "--no-dhcpv6": undefined,
  "--no-ra": undefined,
  "--no-map-gw": undefined,
  "--ipv4-only": "-4",
  "--ipv6-only": "-6",
  "--config-net": undefined,
  // Not a pasta option: podman's switch to keep pasta's gateway mapping.
  "--map-gw": undefined,
};
/** burrow sets these itself. */
const RESERVED: Record<string, string> = {
  "--netns": "burrow passes the sandbox's namespace",
  "--userns": "burrow passes the sandbox's namespace",
  "--netns-only": "burrow passes the sandbox's namespace",
  "--no-netns-quit": "pasta must quit with the sandbox",
  "--foreground": "burrow runs pasta in the background",
  "--log-file": "burrow chooses the log file",
  "--stderr": "burrow chooses the log file",
  "--runas": "burrow chooses the user pasta runs as",
  "--fd": "burrow connects pasta itself",
  "--help": "it is not a network option",
  "--version": "it is not a network option",
};
const RESERVED_SHORT: Record<string, string> = { "-f": "--foreground", "-l": "--log-file", "-e": "--stderr", "-F": "--fd", "-h": "--help" };

const longOf = (table: Record<string, string | undefined>, name: string): string | undefined =>
  name in table ? name : Object.keys(table).find((k) => table[k] === name);

export interface PastaOptions {
  /** The user's pasta arguments, normalised to long names, --map-gw removed. */
  args: string[];
  /** --map-gw given: keep pasta's gateway-to-host mapping (podman's default is --no-map-gw). */
  mapGw: boolean;
  /** Which port option families the user gave (burrow then adds no "none" for them). */
  tcpPorts: boolean;
  udpPorts: boolean;
  tcpNs: boolean;
  udpNs: boolean;
  /** -a values: addresses the sandbox gets instead of the host's. */
  addresses: string[];
  /** --dns-forward given by the user. */
  dnsForward: string[];
  ipv4Only: boolean;
  ipv6Only: boolean;
  /** --map-guest-addr given (burrow then adds none of its own). */
  mapGuestAddr: string | null;
  /** --pid FILE given: pasta writes its pid there and burrow reads it from there. */
  pidFile: string | null;
}

function bad(message: string): BurrowError {
  return new BurrowError(message, { kind: "bad-input" });
}

/** Parses the option list of a pasta network mode (the part after `pasta:`, split on commas). */
export function parsePastaOptions(list: readonly string[]): PastaOptions {
  const out: PastaOptions = {
    args: [],
    mapGw: false,
    tcpPorts: false,
    udpPorts: false,
    tcpNs: false,
    udpNs: false,
    addresses: [],
    dnsForward: [],
    ipv4Only: false,
    ipv6Only: false,
    mapGuestAddr: null,
    pidFile: null,
  };
  for (let i = 0; i < list.length; i++) {
    const item = list[i]!;
    const eq = item.startsWith("--") ? item.indexOf("=") : -1;
    const name = eq > 0 ? item.slice(0, eq) : item;
    const reservedLong = RESERVED[name] !== undefined ? name : RESERVED_SHORT[name];
    if (reservedLong) throw bad(`pasta option ${name} cannot be given: ${RESERVED[reservedLong]}`);
    const valued = longOf(WITH_VALUE, name);
    const flag = longOf(FLAGS, name);
    if (valued) {
      let value: string | undefined;
      if (eq > 0) value = item.slice(eq + 1);
      else value = list[++i];
      if (value === undefined) throw bad(`pasta option ${name} needs a value: write ${name},VALUE`);
      checkValue(valued, value);
      // pasta refuses a second --pid: only the last one given is passed on.
      if (valued === "--pid" && out.pidFile !== null) out.args.splice(out.args.lastIndexOf("--pid"), 2);
      out.args.push(valued, value);
      if (valued === "--tcp-ports") out.tcpPorts = true;
      if (valued === "--udp-ports") out.udpPorts = true;
      if (valued === "--tcp-ns") out.tcpNs = true;
      if (valued === "--udp-ns") out.udpNs = true;
      if (valued === "--address") out.addresses.push(value);
      if (valued === "--dns-forward") out.dnsForward.push(value);
      if (valued === "--map-guest-addr") out.mapGuestAddr = value;
      if (valued === "--pid") out.pidFile = value;
    } else if (flag) {
      if (eq > 0) throw bad(`pasta option ${name} takes no value (got ${JSON.stringify(item)})`);
      if (flag === "--map-gw") out.mapGw = true;
      else out.args.push(flag);
      if (flag === "--ipv4-only") out.ipv4Only = true;
      if (flag === "--ipv6-only") out.ipv6Only = true;
    } else if (item.startsWith("-")) {
      throw bad(`unknown pasta option ${JSON.stringify(name)}: see pasta(1) for its options; write them comma-separated, as in pasta:--mtu,1500`);
    } else {
      throw bad(`unexpected pasta argument ${JSON.stringify(item)}: options are written comma-separated with their values, as in pasta:-a,10.0.2.10`);
    }
  }
  if (out.ipv4Only && out.ipv6Only) throw bad("pasta options --ipv4-only and --ipv6-only exclude each other");
  return out;
}

function checkValue(option: string, value: string): void {
  const ipOptions = ["--address", "--gateway", "--outbound", "--dns-forward"];
  if (ipOptions.includes(option) && !isIP(value)) {
    throw bad(`invalid pasta option ${option}=${JSON.stringify(value)}: accepted values are IPv4 or IPv6 addresses`);
  }
  if ((option === "--map-guest-addr" || option === "--map-host-loopback") && value !== "none" && !isIP(value)) {
    throw bad(`invalid pasta option ${option}=${JSON.stringify(value)}: accepted values are IPv4 or IPv6 addresses, or none`);
  }
  // The daemon, not the user's shell, hands the path to pasta: a relative one would land in the daemon's directory.
  if (option === "--pid" && (!value.startsWith("/") || value.includes("\0"))) {
    throw bad(`invalid pasta option --pid=${JSON.stringify(value)}: accepted values are absolute file paths`);
  }
  if (option === "--dns" && value !== "" && !isIP(value)) {
    throw bad(`invalid pasta option --dns=${JSON.stringify(value)}: accepted values are IPv4 or IPv6 addresses, or empty to disable`);
  }
  if (option === "--mtu" && !(/^\d{1,5}$/.test(value) && Number(value) <= 65520 && (Number(value) === 0 || Number(value) >= 68))) {
    throw bad(`invalid pasta option --mtu=${JSON.stringify(value)}: accepted values are 0 (no MTU assignment) or an integer from 68 to 65520`);
  }
  if (["--tcp-ports", "--udp-ports", "--tcp-ns", "--udp-ns"].includes(option) && value === "") {
    throw bad(`invalid pasta option ${option}: the port spec is empty; accepted are none, auto or port lists such as 8080:80`);
  }
}

/**
 * containers.conf `pasta_options` followed by the user's options, as podman
 * passes them (the user's come later, so a repeated option is theirs).
 * A bad option in the file is named as the file's.
 */
export function parsePastaOptionsWithConf(confOptions: readonly string[], user: readonly string[]): PastaOptions {
  try {
    parsePastaOptions(confOptions);
  } catch (e) {
    if (e instanceof BurrowError) throw bad(`containers.conf pasta_options: ${e.message}`);
    throw e;
  }
  return parsePastaOptions([...confOptions, ...user]);
}

/** Parses `pasta` or `pasta:OPT,...`; null when the mode is not pasta. */
export function parsePastaMode(mode: string): PastaOptions | null {
  if (mode === "pasta") return parsePastaOptions([]);
  if (!mode.startsWith("pasta:")) return null;
  const rest = mode.slice("pasta:".length);
  return parsePastaOptions(rest === "" ? [] : rest.split(","));
}
