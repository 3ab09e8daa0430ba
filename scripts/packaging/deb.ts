// The .deb: a staging tree handed to `dpkg-deb --root-owner-group --build`
// (no Debian toolchain: no debhelper, no dpkg-buildpackage). What goes in:
//   /usr/bin/burrow                                   the release binary, not stripped
//   /usr/share/man/man1/burrow*.1.gz                  from the citty definitions
//   /usr/share/bash-completion/completions/burrow     `burrow completion bash`
//   /usr/share/zsh/vendor-completions/_burrow         Debian's zsh vendor directory
//   /usr/share/fish/vendor_completions.d/burrow.fish
//   /usr/share/doc/burrow/{copyright,changelog.Debian.gz}
//   /usr/share/lintian/overrides/burrow               the not-stripped override and why
import { $ } from "bun";
import { chmodSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const DEB_ARCH = { x64: "amd64", arm64: "arm64" } as const;

export const MAINTAINER = "burrow developers <burrow@users.noreply.github.com>";
export const DEPENDS = "libc6 (>= 2.27), uidmap, slirp4netns | passt";
export const RECOMMENDS = "passt, slirp4netns, containernetworking-plugins, golang-github-containernetworking-plugin-dnsname, dnsmasq-base, iptables";

export interface DebInput {
  version: string;
  commit: string;
  /** build date, ISO 8601 */
  date: string;
  arch: keyof typeof DEB_ARCH;
  binary: string;
  manPages: [string, string][];
  completions: { bash: string; zsh: string; fish: string };
  /** where to make the staging tree (emptied by the caller) */
  stage: string;
  outfile: string;
}

/**
 * The package's version: upstream version, Debian revision 1. A package
 * made outside Debian from an upstream release is non-native, which is
 * also what names its changelog changelog.Debian.gz (Debian policy 12.7).
 */
export function debVersion(version: string): string {
  return `${version.replace(/-/g, "~")}-1`;
}

function rfc2822(iso: string): string {
  const d = new Date(iso);
  return d.toUTCString().replace("GMT", "+0000");
}

function write(path: string, text: string | Uint8Array, mode = 0o644): void {
  mkdirSync(join(path, ".."), { recursive: true, mode: 0o755 });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

/** Every file and directory under dir, for modes and times. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...walk(p));
  }
  return out;
}

export async function buildDeb(i: DebInput): Promise<void> {
  const root = i.stage;
  const doc = `${root}/usr/share/doc/burrow`;
  mkdirSync(`${root}/usr/bin`, { recursive: true });
  await $`cp ${i.binary} ${root}/usr/bin/burrow`.quiet();
  chmodSync(`${root}/usr/bin/burrow`, 0o755);
  const man = `${root}/usr/share/man/man1`;
  for (const [name, text] of i.manPages) write(`${man}/${name}`, text);
  // gzip -9n: no name or time in the header, as Debian policy 12.3 asks.
  await $`gzip -9n ${man}/*.1`.quiet();
  write(`${root}/usr/share/bash-completion/completions/burrow`, i.completions.bash);
  write(`${root}/usr/share/zsh/vendor-completions/_burrow`, i.completions.zsh);
  write(`${root}/usr/share/fish/vendor_completions.d/burrow.fish`, i.completions.fish);
  write(
    `${doc}/copyright`,
    [
      "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
      "Upstream-Name: burrow",
      "",
      "Files: *",
      `Copyright: ${i.date.slice(0, 4)} the burrow authors`,
      "License: burrow",
      " burrow has not chosen a licence yet; until it does, the burrow authors",
      " keep all rights. The binary embeds the Bun runtime (MIT, Copyright Oven),",
      " citty and consola (MIT, UnJS) and valibot (MIT, Fabian Hiller).",
      "",
    ].join("\n"),
  );
  const changelog = [
    `burrow (${debVersion(i.version)}) unstable; urgency=medium`,
    "",
    `  * Release ${i.version}, built from commit ${i.commit}.`,
    "",
    ` -- ${MAINTAINER}  ${rfc2822(i.date)}`,
    "",
  ].join("\n");
  write(`${doc}/changelog.Debian`, changelog);
  await $`gzip -9n ${doc}/changelog.Debian`.quiet();
  write(
    `${root}/usr/share/lintian/overrides/burrow`,
    [
      "# Bun appends the program (bytecode and modules) to its own executable;",
      "# strip(1) removes it and leaves a bare Bun runtime (oven-sh/bun#20599).",
      "burrow: unstripped-binary-or-object [usr/bin/burrow]",
      "# /usr/bin/burrow is the Bun runtime as Oven links it: position-dependent,",
      "# without RELRO, with its own copies of the libraries it embeds. burrow",
      "# cannot relink it; these follow Bun's release binaries.",
      "burrow: hardening-no-pie [usr/bin/burrow]",
      "burrow: hardening-no-relro [usr/bin/burrow]",
      "burrow: embedded-library libjpeg [usr/bin/burrow]",
      "# Not an upload to the Debian archive: there is no ITP bug to close.",
      "burrow: initial-upload-closes-no-bugs [usr/share/doc/burrow/changelog.Debian.gz:1]",
      "",
    ].join("\n"),
  );
  let size = 0;
  for (const p of walk(root)) {
    const st = statSync(p);
    if (st.isDirectory()) chmodSync(p, 0o755);
    else size += st.size;
  }
  const control = [
    "Package: burrow",
    `Version: ${debVersion(i.version)}`,
    `Architecture: ${DEB_ARCH[i.arch]}`,
    `Maintainer: ${MAINTAINER}`,
    `Installed-Size: ${Math.ceil(size / 1024)}`,
    `Depends: ${DEPENDS}`,
    `Recommends: ${RECOMMENDS}`,
    "Section: net",
    "Priority: optional",
    "Description: rootless network sandboxes, port publishing and bridge networks",
    " burrow runs commands in their own network namespace without root: user-mode",
    " networking through slirp4netns or pasta, podman-style -p port publishing,",
    " and CNI bridge networks whose sandboxes reach each other by name. It is the",
    " networking half of podman, without images or a container runtime.",
    "",
  ].join("\n");
  write(`${root}/DEBIAN/control`, control);
  const sums: string[] = [];
  for (const p of walk(root).sort()) {
    if (p.startsWith(`${root}/DEBIAN`) || statSync(p).isDirectory()) continue;
    const hash = new Bun.CryptoHasher("md5").update(await Bun.file(p).arrayBuffer()).digest("hex");
    sums.push(`${hash}  ${p.slice(root.length + 1)}`);
  }
  write(`${root}/DEBIAN/md5sums`, `${sums.join("\n")}\n`);
  // Same commit, same times: every member gets the build date.
  const t = new Date(i.date);
  for (const p of [root, ...walk(root)]) utimesSync(p, t, t);
  const epoch = String(Math.floor(t.getTime() / 1000));
  // gzip, not xz: 5 s of CPU instead of 66 s for the 110 MB binary on this
  // machine, for a .deb 13 MB larger (docs/benchmarks.md), and every dpkg reads it.
  await $`dpkg-deb --root-owner-group -Zgzip --build ${root} ${i.outfile}`.env({ ...process.env, SOURCE_DATE_EPOCH: epoch }).quiet();
}
