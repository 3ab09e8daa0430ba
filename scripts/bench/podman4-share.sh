#!/usr/bin/env bash
# Rootless netavark networks in podman 4's own namespace (BURROW_PODMAN_USERNS=1:
# burrow's session in podman's user namespace, an anchor container holding
# podman's rootless netns; docs/netavark.md "podman 4, when asked"), against
# burrow in a namespace of its own and podman 4's own run, side by side in
# one hyperfine run, as the test user. Run as root.
#
#   sudo scripts/bench/podman4-share.sh [RUNS [ALONE_RUNS]]   (20, 8)
#
# Measured (the same network, made by podman, DNS on):
#   burrow run --rm --network NET -p 127.0.0.1:P:80 -- true   (shared, then own)
#   podman run --rm --network NET -p 127.0.0.1:P:80 --rootfs DIR true
# Warm first: a sandbox of each burrow session and a podman container stay
# on the network. Then alone (ALONE_RUNS): nothing else on it, so that each
# shared run starts and ends an anchor and a keeper, as podman starts and
# removes its namespace for a lone container.
#
# The script has a HOME and XDG_RUNTIME_DIR of its own for the test user,
# so podman's storage, its pause process and its rootless namespace are
# its alone (HOME not below /run: podman 4 runs netavark with a /run of its
# own; XDG short: podman 4 refuses a runroot over 50 characters). Each
# command goes through `env` (its session's variables), podman's too.
# Everything is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

runs=${1:-20}
alone_runs=${2:-8}
bench_require hyperfine podman
case $(podman --version) in "podman version 4."*) ;; *) bench_die "podman 4 is not the installed podman ($(podman --version)): this measures podman 4's namespace" ;; esac
b=$(bench_burrow)

home=$bench_tmp/p4share-$$
xdg=/run/user/$bench_uid/p4s-$$
conf=$home/containers.conf
net=p4share
base=(env -i -C "$home" HOME="$home" USER="$bench_user" LOGNAME="$bench_user" PATH=/usr/local/bin:/usr/bin:/bin
  XDG_RUNTIME_DIR="$xdg" TMPDIR="$bench_tmp" LANG=C.UTF-8 CONTAINERS_CONF="$conf" PODMAN_IGNORE_CGROUPSV1_WARNING=1
  BURROW_NETWORK_BACKEND=netavark BURROW_IDLE_TIMEOUT=60 "${setpriv_argv[@]}")
shared=(env BURROW_PODMAN_USERNS=1 BURROW_RUNTIME_DIR="$xdg/b1" BURROW_STATE_DIR="$home/b1")
own=(env BURROW_PODMAN_USERNS=0 BURROW_RUNTIME_DIR="$xdg/b0" BURROW_STATE_DIR="$home/b0")
as() { "${base[@]}" "$@"; }

cleanup() {
  local pid pause
  for s in shared own; do
    local -n e=$s
    as "${e[@]}" "$b" rm -fa >/dev/null 2>&1 || true
  done
  as podman rm -fa -t 0 >/dev/null 2>&1 || true
  for dir in "$xdg/b1" "$xdg/b0"; do
    for pid in $(pids_with_env "BURROW_RUNTIME_DIR=$dir"); do
      case $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) in *" __daemon "*) kill -TERM "$pid" 2>/dev/null || true ;; esac
    done
  done
  for _ in $(seq 50); do
    [ -z "$(pids_with_env "BURROW_RUNTIME_DIR=$xdg/b1")$(pids_with_env "BURROW_RUNTIME_DIR=$xdg/b0")" ] && break
    sleep 0.1
  done
  for pid in $(pids_with_env "BURROW_RUNTIME_DIR=$xdg/b1") $(pids_with_env "BURROW_RUNTIME_DIR=$xdg/b0"); do
    echo "$(basename "$0"): killing leftover $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)(pid $pid)" >&2
    kill -KILL "$pid" 2>/dev/null || true
  done
  pause=$(cat "$xdg/libpod/tmp/pause.pid" 2>/dev/null || true)
  if [ -n "$pause" ] && [ "$(stat -c %u "/proc/$pause" 2>/dev/null)" = "$bench_uid" ] &&
    [ "$(cat "/proc/$pause/comm" 2>/dev/null)" = "podman pause" ]; then
    kill -KILL "$pause" 2>/dev/null || true
  fi
  rm -rf "$home" "$xdg"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ ! -e "$home" ] && [ ! -e "$xdg" ] || bench_die "$home or $xdg exists"
install -d -m 0700 -o "$bench_uid" -g "$bench_gid" "$home" "$xdg"
# No systemd here: runc, cgroupfs, events to a file (as setup-peers.sh).
printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n[network]\nnetwork_backend = "netavark"\n' >"$conf"
chmod 0644 "$conf"

echo "podman4-share.sh: $("$b" --version), $(podman --version), $(hyperfine --version)"
as podman network create "$net" >/dev/null
as "${shared[@]}" "$b" run -d --network "$net" --name resident -- sleep 100000 >/dev/null
as "${own[@]}" "$b" run -d --network "$net" --name resident -- sleep 100000 >/dev/null
as podman run -d --network "$net" --name resident --rootfs "$bench_rootfs" sleep 100000 >/dev/null
[ "$(as "${shared[@]}" "$b" info --format json | grep -c '"UserNamespace": "podman"')" = 1 ] || bench_die "the shared session is not in podman's user namespace"

measure() { # NAME RUNS: the three commands, each once first, then hyperfine
  local name=$1 n=$2 p1 p2 p3
  p1=$(free_port 23910)
  p2=$(free_port $((p1 + 1)))
  p3=$(free_port $((p2 + 1)))
  local cmds=(
    "${shared[*]} $b run --rm --network $net -p 127.0.0.1:$p1:80 -- true"
    "${own[*]} $b run --rm --network $net -p 127.0.0.1:$p2:80 -- true"
    "env podman run --rm --network $net -p 127.0.0.1:$p3:80 --rootfs $bench_rootfs true"
  )
  for c in "${cmds[@]}"; do
    # shellcheck disable=SC2086 # plain words, as hyperfine -N splits them
    as $c >/dev/null || bench_die "failed: $c"
  done
  as hyperfine -N --warmup 2 --runs "$n" --export-json "$home/$name.json" "${cmds[@]}" >&2
  cp "$home/$name.json" "$bench_out/podman4-share-$name-$(date -u +%Y%m%dT%H%M%SZ).json"
  json "(() => { const r = j[0].results.map((x) => { const s = [...x.times].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] * 1000; });
    return '$name: medians shared ' + r[0].toFixed(1) + ' ms, own ' + r[1].toFixed(1) + ' ms, podman 4 ' + r[2].toFixed(1) + ' ms; shared/podman ' + (r[0] / r[2]).toFixed(3) + ', own/podman ' + (r[1] / r[2]).toFixed(3) + ', shared/own ' + (r[0] / r[1]).toFixed(3); })()" "$home/$name.json"
}

measure warm "$runs"
as "${shared[@]}" "$b" rm -f resident >/dev/null
as "${own[@]}" "$b" rm -f resident >/dev/null
as podman rm -f -t 0 resident >/dev/null
measure alone "$alone_runs"
