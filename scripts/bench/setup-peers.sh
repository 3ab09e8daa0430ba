#!/usr/bin/env bash
# Prepares the peers burrow is benchmarked against (docs/benchmarks.md), as
# root. Idempotent: prints one line per thing it changes, nothing otherwise.
#
#   - Debian packages: podman (4.3 in bookworm) with runc, rootlesskit,
#     busybox-static, hyperfine, iperf3. Installed without recommends: podman
#     recommends fuse-overlayfs, buildah, dbus-user-session, none of which
#     `podman run --rootfs` needs.
#   - a busybox root filesystem owned by the test user (BENCH_ROOTFS, default
#     ~burrowtest/bench-rootfs) with sh, true, sleep, httpd, nc, and iperf3
#     with its shared libraries, so podman needs no image and no registry.
#   - the test user's ~/.config/containers/containers.conf: runc (crun refuses
#     this machine's hybrid cgroup layout), cgroupfs (no systemd user session),
#     events to a file (no journald), and the CNI network backend (bookworm's
#     podman 4.3 would pick netavark if it were installed; it is not by
#     default, and CNI is what burrow's networks reimplement).
#   - the test user itself, its subuid range and /run/user/UID come from
#     scripts/setup.sh, which this runs first.
#
# Ends by checking `podman run --rm --network none --rootfs DIR true` as the
# test user.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
user=${BURROW_TEST_USER:-burrowtest}

say() { printf 'setup-peers: %s\n' "$*"; }
die() { printf 'setup-peers: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and writes the test user's config)"

# The test user, subuid ranges, /run/user/UID, TMPDIR, iperf3, hyperfine.
bash "$repo/scripts/setup.sh"

uid=$(id -u "$user")
gid=$(id -g "$user")
group=$(id -gn "$user")
home=$(getent passwd "$user" | cut -d: -f6)
rootfs=${BENCH_ROOTFS:-$home/bench-rootfs}

# ---------------------------------------------------------------- packages
# Only packages the archive has: say so for the ones it lacks (rootlesskit is
# optional; the throughput script skips it when missing).
wanted=(podman runc rootlesskit busybox-static hyperfine iperf3)
install=()
for p in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] && continue
  candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    # The lists may be stale: update once and ask again.
    if [ -z "${updated:-}" ]; then
      apt-get update -qq </dev/null >/dev/null
      updated=1
      candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    fi
  fi
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    [ "$p" = rootlesskit ] || die "package $p is not available from apt (apt-cache policy $p)"
    say "rootlesskit is not packaged for this distribution: skipping it (throughput.sh leaves its row out)"
    continue
  fi
  install+=("$p")
done
if [ ${#install[@]} -gt 0 ]; then
  say "installing ${install[*]}"
  export DEBIAN_FRONTEND=noninteractive
  [ -n "${updated:-}" ] || apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends "${install[@]}" </dev/null >/dev/null
fi

# ---------------------------------------------------------------- rootfs
# bin/busybox with applet links, and iperf3 with every library ldd names at
# the same path, so the dynamic loader finds them inside the container.
as_user() {
  (cd "$home" && env -i HOME="$home" USER="$user" LOGNAME="$user" PATH=/usr/local/bin:/usr/bin:/bin \
    XDG_RUNTIME_DIR="/run/user/$uid" TMPDIR="$home/tmp" LANG=C.UTF-8 \
    setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@")
}

rootfs_changed=0
ensure_file() { # source dest
  if [ ! -e "$2" ] || ! cmp -s "$1" "$2"; then
    mkdir -p "$(dirname "$2")"
    cp -fL "$1" "$2"
    rootfs_changed=1
  fi
}
[ -d "$rootfs" ] || { mkdir -p "$rootfs"; rootfs_changed=1; }
for d in bin etc proc sys dev tmp run usr/bin; do
  [ -d "$rootfs/$d" ] || { mkdir -p "$rootfs/$d"; rootfs_changed=1; }
done
ensure_file /bin/busybox "$rootfs/bin/busybox"
for applet in sh true sleep httpd nc cat ls ps; do
  if [ "$(readlink "$rootfs/bin/$applet" 2>/dev/null)" != busybox ]; then
    ln -sfn busybox "$rootfs/bin/$applet"
    rootfs_changed=1
  fi
done
iperf3_bin=$(command -v iperf3)
ensure_file "$iperf3_bin" "$rootfs/usr/bin/iperf3"
# ldd lines: "libx.so => /lib/.../libx.so (0x...)" and "/lib64/ld-linux... (0x...)".
while read -r lib; do
  ensure_file "$lib" "$rootfs$lib"
done < <(ldd "$iperf3_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
# /etc/passwd and /etc/group so iperf3 and busybox can name uid 0.
[ -e "$rootfs/etc/passwd" ] || { echo 'root:x:0:0:root:/:/bin/sh' >"$rootfs/etc/passwd"; rootfs_changed=1; }
[ -e "$rootfs/etc/group" ] || { echo 'root:x:0:' >"$rootfs/etc/group"; rootfs_changed=1; }
if [ "$rootfs_changed" = 1 ] || [ -n "$(find "$rootfs" ! -user "$user" -print -quit)" ]; then
  chown -R "$user:$group" "$rootfs"
  say "busybox rootfs ready at $rootfs"
fi

# ---------------------------------------------------------------- containers.conf
conf_dir=$home/.config/containers
conf=$conf_dir/containers.conf
want_conf='# Written by burrow scripts/bench/setup-peers.sh: podman 4.3 rootless on a
# machine without systemd-logind or journald and with a hybrid cgroup layout.
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "cni"'
if [ "$(cat "$conf" 2>/dev/null)" != "$want_conf" ]; then
  say "writing $conf"
  install -d -o "$user" -g "$group" -m 0755 "$home/.config" "$conf_dir"
  printf '%s\n' "$want_conf" >"$conf"
  chown "$user:$group" "$conf"
fi

# ---------------------------------------------------------------- check
if ! out=$(as_user podman run --rm --network none --rootfs "$rootfs" true 2>&1); then
  printf '%s\n' "$out" >&2
  die "podman run --rm --network none --rootfs $rootfs true failed as $user"
fi
[ -n "${BENCH_QUIET:-}" ] || say "ok: podman $(as_user podman version --format '{{.Client.Version}}' 2>/dev/null) runs rootless as $user"
