#!/usr/bin/env bash
# Prepares this machine to build, demo and test burrow. Idempotent: silent when
# everything is already in place, one line per thing it changes otherwise.
#
#   - Debian packages for the real helpers (slirp4netns, pasta, CNI plugins,
#     newuidmap, iptables, ...) and the test tools (iperf3, hyperfine, curl).
#   - node_modules (npm ci; bun comes from npm) and dist/burrow.
#   - the unprivileged test user (BURROW_TEST_USER, default burrowtest) with a
#     /etc/subuid and /etc/subgid range, /run/user/UID (nobody else makes it on
#     machines without systemd-logind) and a private TMPDIR (/tmp may be 0755).
#   - /dev/net/tun 0666, as desktop distributions ship it (slirp4netns and
#     pasta open it as the user).
#   - a copy of dist/burrow the test user can execute, at BURROW_TEST_BIN
#     (default /usr/local/lib/burrow-test/burrow): the repo itself may sit under
#     a directory the test user cannot enter.
#
# System changes need root. Run as another user, it only checks, lists what is
# missing and exits 1 (or builds, if that is all that is left to do).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
user=${BURROW_TEST_USER:-burrowtest}
bin_copy=${BURROW_TEST_BIN:-/usr/local/lib/burrow-test/burrow}

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

is_root=0
[ "$(id -u)" = 0 ] && is_root=1
needs_root=()   # what is missing that only root can fix, for the non-root message
need() { needs_root+=("$*"); }

# ---------------------------------------------------------------- packages
packages=(uidmap iptables iproute2 slirp4netns passt containernetworking-plugins
  golang-github-containernetworking-plugin-dnsname dnsmasq-base iperf3 hyperfine
  busybox-static curl procps psmisc util-linux
  # real clients and servers in tests (the --accelerate filter tests run python3 under it)
  python3
  # musl-gcc builds the static enter helper embedded in dist/burrow
  # (src/sandbox/enter-helper.c, scripts/build.ts)
  musl-tools
  # the sid tier (scripts/sid-root.sh builds a Debian sid root with it)
  debootstrap
  # Debian 12's netavark 1.4 (iptables) for test/integration/netavark-lib.test.ts;
  # podman 4.3 (runc, conmon) for test/integration/podman4-share.test.ts
  netavark aardvark-dns podman runc
  # nft: test/unit/egress-nft.test.ts loads the egress ruleset in an unshare -rn
  # namespace (issue 18; the wiring will need it at run time too)
  nftables
  # the release tests: lintian checks the .deb; the arm64 binary runs under
  # qemu-user with arm64 libc (dpkg --add-architecture arm64, below); man
  # renders the man pages (and groff checks them in the unit tests); zsh and
  # fish run their completion scripts
  lintian qemu-user-static libc6:arm64 libstdc++6:arm64 man-db zsh fish)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

arm64_arch=0
dpkg --print-foreign-architectures | grep -qx arm64 && arm64_arch=1
[ $arm64_arch = 1 ] || need "dpkg architecture arm64 (dpkg --add-architecture arm64)"

missing_packages=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing_packages+=("$p")
done
[ ${#missing_packages[@]} -eq 0 ] || need "Debian packages: ${missing_packages[*]}"

# ---------------------------------------------------------------- test user
user_exists=0
getent passwd "$user" >/dev/null && user_exists=1
[ $user_exists = 1 ] || need "user $user (useradd -m -s /bin/bash $user)"

# Prints the first START (a multiple of 65536, >= 200000) such that
# [START, START+65536) overlaps no range in the given subordinate-id files.
free_subid_start() {
  awk -F: '
    NF >= 3 { s[n] = $2 + 0; e[n] = $2 + $3; n++ }
    END {
      c = 200000
      do {
        moved = 0
        for (i = 0; i < n; i++)
          if (c < e[i] && s[i] < c + 65536) { c = int((e[i] + 65535) / 65536) * 65536; moved = 1 }
      } while (moved)
      print c
    }' "$@"
}

has_subid() { # file user uid
  [ -f "$1" ] && grep -qE "^($2|$3):[0-9]+:[0-9]+" "$1"
}

# ---------------------------------------------------------------- apply
# Stops a non-root caller that has been told (by need) about missing pieces.
refuse_if_needed() {
  [ ${#needs_root[@]} -eq 0 ] && return
  say "not running as root, and this machine still needs:"
  for n in "${needs_root[@]}"; do printf '  - %s\n' "$n"; done
  die "run scripts/setup.sh as root (sudo bash scripts/setup.sh)"
}
[ $is_root = 1 ] && needs_root=()
refuse_if_needed

if [ $arm64_arch = 0 ]; then
  say "adding dpkg architecture arm64"
  dpkg --add-architecture arm64
fi
if [ ${#missing_packages[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing_packages[@]}" </dev/null >/dev/null
fi

if [ $user_exists = 0 ]; then
  say "creating test user $user"
  useradd -m -s /bin/bash "$user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)
run_dir=/run/user/$uid
tmp_dir=${BURROW_TEST_TMPDIR:-$home/tmp}

# Root-only fixes below; a non-root caller reaches them only when everything
# is already in place, so each check is followed by a fix or a complaint.
fix() { # description, command...
  local what=$1; shift
  if [ $is_root = 1 ]; then say "$what"; "$@"; else need "$what"; fi
}

for f in /etc/subuid /etc/subgid; do
  if ! has_subid "$f" "$user" "$uid"; then
    start=$(free_subid_start /dev/null $(ls /etc/subuid /etc/subgid 2>/dev/null))
    fix "adding $user:$start:65536 to $f" sh -c "echo '$user:$start:65536' >> '$f'"
  fi
done

ensure_dir() { # path owner mode
  local cur
  cur=$(stat -c '%U:%G %a' "$1" 2>/dev/null || true)
  if [ "$cur" != "$2 $3" ]; then
    fix "making $1 ($2, $3)" sh -c "mkdir -p '$1' && chown '$2' '$1' && chmod '$3' '$1'"
  fi
}
ensure_dir "$run_dir" "$user:$(id -gn "$user")" 700
ensure_dir "$tmp_dir" "$user:$(id -gn "$user")" 700

if [ ! -e /dev/net/tun ]; then
  fix "creating /dev/net/tun" sh -c 'mkdir -p /dev/net && mknod -m 0666 /dev/net/tun c 10 200'
elif [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  # Warn instead of failing: some containers mount /dev read-only. Tests of
  # slirp4netns and pasta then fail with a message naming the cause.
  fix "making /dev/net/tun 0666 (was $(stat -c %a /dev/net/tun))" \
    sh -c 'chmod 0666 /dev/net/tun || echo "setup: warning: cannot chmod /dev/net/tun" >&2'
fi

# Debian kernels before 6.x gate unprivileged user namespaces behind this knob.
if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 0 ]; then
  fix "enabling kernel.unprivileged_userns_clone" sh -c 'echo 1 > /proc/sys/kernel/unprivileged_userns_clone'
fi

refuse_if_needed

# ---------------------------------------------------------------- node_modules
cd "$repo"
stamp=node_modules/.package-lock.json   # npm rewrites it on every install
if [ ! -x node_modules/.bin/bun ] || [ ! -e $stamp ] || [ package.json -nt $stamp ] ||
  { [ -e package-lock.json ] && [ package-lock.json -nt $stamp ]; }; then
  # npm ci only: it installs exactly the lock file, and refuses a lock file
  # that no longer matches package.json (fix that with npm install and
  # commit the lock file; setup never rewrites it).
  [ -e package-lock.json ] || die "package-lock.json is missing: run npm install once and commit it"
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error </dev/null || die "npm ci failed (is package-lock.json in step with package.json?)"
  touch $stamp
fi
[ -x node_modules/.bin/bun ] || die "node_modules/.bin/bun missing after npm ci"

# ---------------------------------------------------------------- dist/burrow
# Rebuild when anything that goes into the binary is newer. Directories are in
# the list so that deleting a file under src/ also counts.
if [ -n "${BURROW_FORCE_BUILD:-}" ] || [ ! -x dist/burrow ] ||
  [ -n "$(find src scripts/build.ts package.json package-lock.json bunfig.toml -newer dist/burrow -print -quit 2>/dev/null)" ]; then
  say "building dist/burrow"
  node_modules/.bin/bun run --silent build </dev/null || die "build failed (bun run build)"
fi

# The copy the test user runs. Written next to the target and renamed, so a
# burrow that is still running keeps its old inode.
if [ ! -x "$bin_copy" ] || [ dist/burrow -nt "$bin_copy" ] || ! cmp -s dist/burrow "$bin_copy"; then
  [ $is_root = 1 ] || die "$bin_copy is out of date; run scripts/setup.sh as root"
  say "installing dist/burrow as $bin_copy"
  install -d -m 0755 "$(dirname "$bin_copy")"
  install -m 0755 dist/burrow "$bin_copy.new.$$"
  mv -f "$bin_copy.new.$$" "$bin_copy"
fi
