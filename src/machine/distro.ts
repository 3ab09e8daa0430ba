// Which distribution this is (/etc/os-release, ID and ID_LIKE) and what its
// package manager calls the pieces burrow uses, so that `burrow doctor` names
// a fix that works here. Package names checked against each distribution's
// archive as of Debian 12, Ubuntu 24.04, Fedora 41, Arch and openSUSE
// Tumbleweed (docs/decisions.md, "doctor's package names").
import { readFileSync } from "node:fs";

export type Family = "debian" | "fedora" | "arch" | "suse" | "unknown";

export interface Distro {
  family: Family;
  /** PRETTY_NAME, or ID. */
  name: string;
}

/** Parses os-release(5) text: KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2]!;
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1).replace(/\\(["\\$`])/g, "$1");
    out[m[1]!] = value;
  }
  return out;
}

export function distroFrom(osRelease: Record<string, string>): Distro {
  const ids = [osRelease.ID ?? "", ...(osRelease.ID_LIKE ?? "").split(/\s+/)].filter(Boolean);
  const name = osRelease.PRETTY_NAME || osRelease.NAME || osRelease.ID || "an unknown distribution";
  const has = (...xs: string[]) => ids.some((id) => xs.includes(id) || xs.some((x) => id.startsWith(`${x}-`)));
  const family: Family = has("debian", "ubuntu")
    ? "debian"
    : has("fedora", "rhel", "centos")
      ? "fedora"
      : has("arch")
        ? "arch"
        : has("suse", "opensuse", "sles")
          ? "suse"
          : "unknown";
  return { family, name };
}

/** This machine's distribution: /etc/os-release, else /usr/lib/os-release (os-release(5)). */
export function hostDistro(files = ["/etc/os-release", "/usr/lib/os-release"]): Distro {
  for (const f of files) {
    try {
      return distroFrom(parseOsRelease(readFileSync(f, "utf8")));
    } catch {}
  }
  return { family: "unknown", name: "an unknown distribution" };
}

/** The pieces doctor can name a package for. */
export type Piece = "uidmap" | "slirp4netns" | "pasta" | "cni-plugins" | "dnsname" | "dnsmasq" | "iptables" | "netavark";

const PACKAGES: Record<Exclude<Family, "unknown">, Record<Piece, string>> = {
  debian: {
    uidmap: "uidmap",
    slirp4netns: "slirp4netns",
    pasta: "passt",
    "cni-plugins": "containernetworking-plugins",
    dnsname: "golang-github-containernetworking-plugin-dnsname",
    dnsmasq: "dnsmasq-base",
    iptables: "iptables",
    netavark: "netavark aardvark-dns",
  },
  fedora: {
    uidmap: "shadow-utils",
    slirp4netns: "slirp4netns",
    pasta: "passt",
    "cni-plugins": "containernetworking-plugins",
    dnsname: "podman-plugins",
    dnsmasq: "dnsmasq",
    iptables: "iptables-nft",
    netavark: "netavark aardvark-dns",
  },
  arch: {
    uidmap: "shadow",
    slirp4netns: "slirp4netns",
    pasta: "passt",
    "cni-plugins": "cni-plugins",
    dnsname: "podman-dnsname",
    dnsmasq: "dnsmasq",
    iptables: "iptables",
    netavark: "netavark aardvark-dns",
  },
  suse: {
    uidmap: "shadow",
    slirp4netns: "slirp4netns",
    pasta: "passt",
    "cni-plugins": "cni-plugins",
    dnsname: "cni-plugin-dnsname",
    dnsmasq: "dnsmasq",
    iptables: "iptables",
    netavark: "netavark aardvark-dns",
  },
};

/** The package that provides PIECE on this distribution. */
export function packageFor(d: Distro, piece: Piece): string {
  return PACKAGES[d.family === "unknown" ? "debian" : d.family][piece];
}

/** The command that installs PIECES here, e.g. "sudo apt-get install uidmap". */
export function installCommand(d: Distro, ...pieces: Piece[]): string {
  const pkgs = pieces.map((p) => packageFor(d, p)).join(" ");
  switch (d.family) {
    case "debian":
      return `sudo apt install ${pkgs}`;
    case "fedora":
      return `sudo dnf install ${pkgs}`;
    case "arch":
      return `sudo pacman -S ${pkgs}`;
    case "suse":
      return `sudo zypper install ${pkgs}`;
    default:
      return `install ${pkgs} (the Debian package name; ${d.name} may call it differently)`;
  }
}
