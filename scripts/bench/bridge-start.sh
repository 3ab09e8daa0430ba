#!/usr/bin/env bash
# Bridge-network start-up only: burrow (CNI networks, or netavark ones with
# BURROW_BACKEND=netavark) against podman 4.3 on a network of podman's own
# backend (netavark 1.4 on Debian 12 unless PODMAN_BACKEND=cni), side by side
# in one hyperfine run, rootless (as the test user) and rootful (as root,
# inside a network namespace made here).
# Run as root.
#
#   sudo scripts/bench/bridge-start.sh [RUNS [rootless|rootful|both]]   RUNS per command (20), both
#
# Measured, warm (each command once first, then 3 hyperfine warm-ups, then RUNS):
#   burrow run --rm --network NET -p 127.0.0.1:P:80 -- true
#   podman run --rm --network NET2 -p 127.0.0.1:P2:80 --rootfs DIR true
# NET is made by `burrow network create` (DNS on, as podman's), NET2 by
# `podman network create`. One long-lived sandbox and one container stay on
# them throughout (as in bridge.sh), so both tools' rootless network
# namespace and DNS server (dnsmasq, aardvark-dns) are up: start times are
# warm. Goal (issue 14): burrow <= 1/5 of podman.
#
# Nothing here touches anyone else's state: burrow gets private runtime,
# state and conflist dirs; podman a private containers.conf (CONTAINERS_CONF:
# runc, cgroupfs, events to a file, the network backend, its own network
# config dir) and private --root/--runroot, so neither sees the test user's
# or the host's networks and containers. Rootful runs in a network namespace
# of its own (ip netns), so no bridge or iptables rule lands on the host.
# Everything is removed on exit, also on failure or Ctrl-C.
#
# Writes .bench/bridge-start-MODE-TIME.json (hyperfine's export) and prints
# medians and the ratio. hyperfine runs with -i and failed runs are counted
# and printed (BENCH_STRICT=1 leaves -i out), as in start.sh.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs=${1:-20}
modes=${2:-both}
[[ $runs =~ ^[1-9][0-9]*$ ]] || bench_die "RUNS is a whole number above 0, not \"$runs\""
case $modes in rootless | rootful) ;; both) modes="rootless rootful" ;; *) bench_die "MODE is rootless, rootful or both, not \"$modes\"" ;; esac
backend=${PODMAN_BACKEND:-netavark}
case $backend in netavark | cni) ;; *) bench_die "PODMAN_BACKEND is netavark or cni, not \"$backend\"" ;; esac
burrow_backend=${BURROW_BACKEND:-cni}
case $burrow_backend in netavark | cni) ;; *) bench_die "BURROW_BACKEND is cni or netavark, not \"$burrow_backend\"" ;; esac
[ "$(id -u)" = 0 ] || bench_die "run as root: it runs the rootless commands as $bench_user with setpriv"
for c in hyperfine podman busybox nsenter; do command -v "$c" >/dev/null || bench_die "$c is not installed (podman, busybox-static: scripts/bench/setup-peers.sh)"; done
[ -x "$bench_bun" ] || bench_die "node_modules/.bin/bun is missing: npm ci"
[ "$backend" != netavark ] || [ -x /usr/lib/podman/netavark ] || [ -x /usr/libexec/podman/netavark ] ||
  bench_die "netavark is not installed (apt-get install netavark aardvark-dns), or measure podman on CNI with PODMAN_BACKEND=cni"
mkdir -p "$bench_out"
b=$(bench_burrow)
ignore=(-i)
[ -z "${BENCH_STRICT:-}" ] || ignore=()
# BENCH_GAP_MS: a pause before each measured run (hyperfine --prepare, not timed), for the start of a
# run whose predecessor's deferred teardown has finished (issue 14: "a teardown can finish after the
# command has exited"); back to back (the default), each run also waits for the one before's.
gap=()
if [ -n "${BENCH_GAP_MS:-}" ]; then
  [[ $BENCH_GAP_MS =~ ^[0-9]+$ ]] || bench_die "BENCH_GAP_MS is a whole number of milliseconds, not \"$BENCH_GAP_MS\""
  gap=(--prepare "sleep $(awk -v ms="$BENCH_GAP_MS" 'BEGIN { printf "%.3f", ms / 1000 }')")
fi
bnet=burrow-bstart
pnet=podman-bstart
keep=bench-bstart-keep
stamp=$(date -u +%Y%m%dT%H%M%SZ)

# A private burrow for this script (not lib.sh's shared bench dirs: another
# bench script may be running).
bench_runtime=/run/user/$bench_uid/burrow-bstart-$$
bench_state=$bench_home/.local/share/burrow-bstart-$$
# Never the user's or podman's network files: private ones for either backend.
burrow_env=(BURROW_RUNTIME_DIR="$bench_runtime" BURROW_STATE_DIR="$bench_state" BURROW_CNI_CONFIG_DIR="$bench_state/net.d" BURROW_IDLE_TIMEOUT=60
  BURROW_NETWORK_BACKEND="$burrow_backend" BURROW_NETWORKS_DIR="$bench_state/networks")
as_burrow_argv=(env -i -C "$bench_home" "${bench_env[@]}" "${burrow_env[@]}" "${setpriv_argv[@]}")

# write_podman_conf FILE NETWORK_DIR OWNER
write_podman_conf() {
  cat >"$1" <<EOF
# Written by burrow scripts/bench/bridge-start.sh for one run.
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "$backend"
network_config_dir = "$2"
EOF
  chown "$3" "$1"
}

# make_rootfs DIR OWNER: busybox with the applets the commands use, so podman needs no image.
make_rootfs() {
  mkdir -p "$1/bin" "$1/etc" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/run"
  cp "$(command -v busybox)" "$1/bin/busybox"
  for a in sh true sleep; do ln -sfn busybox "$1/bin/$a"; done
  echo 'root:x:0:0:root:/:/bin/sh' >"$1/etc/passwd"
  echo 'root:x:0:' >"$1/etc/group"
  chown -R "$2" "$1"
}

# report MODE FILE
report() {
  json '(() => {
  const rs = j[0].results;
  const lines = rs.map((r) => {
    const failed = r.exit_codes.filter((c) => c !== 0);
    const note = failed.length ? `   (${failed.length} of ${r.exit_codes.length} runs FAILED, exit ${[...new Set(failed)].join(",")})` : "";
    return `  ${(r.median * 1000).toFixed(1).padStart(7)} ms median (p25 ${(quant(r.times, 0.25) * 1000).toFixed(1)}, p75 ${(quant(r.times, 0.75) * 1000).toFixed(1)})  ${r.command}${note}`;
  });
  function quant(xs, q) { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(q * (s.length - 1))]; }
  const [b, p] = rs.map((r) => r.median * 1000);
  lines.push(`bridge-start.sh ('"$1"', burrow on '"$burrow_backend"'): burrow ${b.toFixed(1)} ms / podman ${p.toFixed(1)} ms = ${(b / p).toFixed(3)} (1/${(p / b).toFixed(1)})  goal <= 0.200: ${b / p <= 0.2 ? "met" : "MISSED"}`);
  return lines.join("\n");
})()' "$2"
}

echo "bridge-start.sh: $(machine_line)"
echo "bridge-start.sh: $("$b" --version), $(podman --version) ($backend), $(hyperfine --version)," \
  "containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo '?')," \
  "netavark $(dpkg-query -W -f='${Version}' netavark 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- rootless
rootless() {
  local work pargs port port2 cmds c xdg
  work=$(as_user mktemp -d "$bench_tmp/bench-bstart.XXXXXX")
  # podman's own XDG_RUNTIME_DIR: its pause process (the user namespace its
  # containers live in) is then this run's alone. Other bench scripts end the
  # test user's shared one when THEIR storage has no container left
  # (lib.sh's podman_cleanup), which made every later podman run here exit
  # 127 mid-measurement.
  xdg=/run/user/$bench_uid/bstart-podman-$$
  as_user mkdir -m 700 "$xdg"
  as_user mkdir -p "$bench_state/net.d" "$work/networks" "$work/storage" "$work/run"
  write_podman_conf "$work/containers.conf" "$work/networks" "$bench_uid:$bench_gid"
  make_rootfs "$work/rootfs" "$bench_uid:$bench_gid"
  pargs="--root $work/storage --runroot $work/run"
  as_podman() { as_burrow env CONTAINERS_CONF="$work/containers.conf" XDG_RUNTIME_DIR="$xdg" "$@"; }
  rootless_cleanup() {
    local ids pause pid
    if [ -S "$bench_runtime/control.sock" ]; then
      ids=$(as_burrow "$b" ps -a -q 2>/dev/null || true)
      # shellcheck disable=SC2086
      [ -z "$ids" ] || as_burrow "$b" rm -f $ids >/dev/null 2>&1 || true
      as_burrow "$b" network rm -f "$bnet" >/dev/null 2>&1 || true
    fi
    burrow_cleanup "$b"
    rm -rf "$bench_state" "$bench_runtime"
    # shellcheck disable=SC2086
    ids=$(as_podman podman $pargs ps -a -q 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || as_podman podman $pargs rm -f -t 0 $ids >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    as_podman podman $pargs network rm -f "$pnet" >/dev/null 2>&1 || true
    # podman's storage holds files of the user namespace's subuids: removed from inside it.
    # shellcheck disable=SC2086
    as_podman podman $pargs unshare rm -rf "$work/storage" "$work/run" 2>/dev/null || true
    # netavark leaves aardvark-dns running now and then (seen once in ten
    # runs, its config dir already gone): ours by its --config path.
    for pid in $(pgrep -u "$bench_uid" -f "aardvark-dns --config $work/" 2>/dev/null || true); do
      echo "$(basename "$0"): killing leftover aardvark-dns (pid $pid)" >&2
      kill -TERM "$pid" 2>/dev/null || true
    done
    pause=$(cat "$xdg/libpod/tmp/pause.pid" 2>/dev/null || true)
    if [ -n "$pause" ] && [ "$(stat -c %u "/proc/$pause" 2>/dev/null)" = "$bench_uid" ] &&
      [ "$(cat "/proc/$pause/comm" 2>/dev/null)" = "podman pause" ]; then
      kill -TERM "$pause" 2>/dev/null || true
    fi
    rm -rf "$work" "$xdg"
  }
  pending=rootless_cleanup

  as_burrow "$b" network create "$bnet" >/dev/null
  # shellcheck disable=SC2086
  as_podman podman $pargs network create "$pnet" >/dev/null 2>>"$work/podman.log" || { cat "$work/podman.log" >&2; bench_die "podman network create failed"; }
  as_burrow "$b" run -d --network "$bnet" --name "$keep" -- sleep 100000 >/dev/null
  # shellcheck disable=SC2086
  as_podman podman $pargs run -d --network "$pnet" --name "$keep" --rootfs "$work/rootfs" sleep 100000 >/dev/null 2>>"$work/podman.log" ||
    { cat "$work/podman.log" >&2; bench_die "podman run -d --network $pnet failed"; }

  port=$(free_port 18190)
  port2=$(free_port $((port + 1)))
  cmds=(
    "$b run --rm --network $bnet -p 127.0.0.1:$port:80 -- true"
    "podman $pargs run --rm --network $pnet -p 127.0.0.1:$port2:80 --rootfs $work/rootfs true"
  )
  echo "bridge-start.sh (rootless): warming up (each command once)"
  for c in "${cmds[@]}"; do
    # shellcheck disable=SC2086 # plain words, as hyperfine -N splits them
    as_podman $c 2>>"$work/podman.log" || as_podman $c || bench_die "failed twice: $c"
  done
  as_podman hyperfine -N "${ignore[@]}" "${gap[@]}" --warmup 3 --runs "$runs" --export-json "$work/start.json" "${cmds[@]}"
  cp "$work/start.json" "$bench_out/bridge-start-rootless-$stamp.json"
  report rootless "$bench_out/bridge-start-rootless-$stamp.json"
  pending=
  rootless_cleanup
}

# ---------------------------------------------------------------- rootful
rootful() {
  local root ns in_ns port port2 cmds c limits
  root=/run/burrow-bstart-$$
  ns=burrow-bstart-$$
  rootful_env=(env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
    BURROW_RUNTIME_DIR="$root/run" BURROW_STATE_DIR="$root/state" BURROW_CNI_CONFIG_DIR="$root/cni" BURROW_IDLE_TIMEOUT=60
    BURROW_NETWORK_BACKEND="$burrow_backend" BURROW_NETWORKS_DIR="$root/networks" BURROW_NETAVARK_DIR="$root/netavark"
    CONTAINERS_CONF="$root/containers.conf")
  in_ns=(nsenter "--net=/run/netns/$ns" --)
  pargs="--root $root/pstorage --runroot $root/prun"
  # Rootful podman raises the container's nofile and nproc limits to 1048576
  # unless told otherwise; a root without CAP_SYS_RESOURCE (a container, as
  # on the machine of docs/benchmarks.md) cannot, and runc failed even to set
  # them to this shell's own limits there ("error setting rlimit type 6/7:
  # operation not permitted"): lower ones.
  limits="--ulimit nofile=1024:4096 --ulimit nproc=4096:4096"
  as_root() { "${rootful_env[@]}" "${in_ns[@]}" "$@"; }
  rootful_cleanup() {
    local ids pid
    if [ -S "$root/run/control.sock" ]; then
      ids=$(as_root "$b" ps -a -q 2>/dev/null || true)
      # shellcheck disable=SC2086
      [ -z "$ids" ] || as_root "$b" rm -f $ids >/dev/null 2>&1 || true
      as_root "$b" network rm -f "$bnet" >/dev/null 2>&1 || true
    fi
    # shellcheck disable=SC2086
    ids=$(as_root podman $pargs ps -a -q 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || as_root podman $pargs rm -f -t 0 $ids >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    as_root podman $pargs network rm -f "$pnet" >/dev/null 2>&1 || true
    # SIGTERM to the supervisor is a clean stop of its daemon too; then whatever runs in the netns.
    pid=$(sed -n 's/^{"pid":\([0-9]*\).*/\1/p' "$root/run/supervisor.json" 2>/dev/null || true)
    [ -n "$pid" ] && [[ $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) == "burrow-supervisor "* ]] && kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      echo "$(basename "$0"): killing leftover $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)(pid $pid)" >&2
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns delete "$ns" 2>/dev/null || true
    awk -v r="$root/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$root"
  }
  pending=rootful_cleanup
  [ ! -e "$root" ] || bench_die "$root exists"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  mkdir -m 700 -p "$root" "$root/run" "$root/state" "$root/cni" "$root/pnet"
  write_podman_conf "$root/containers.conf" "$root/pnet" 0:0
  make_rootfs "$root/rootfs" 0:0

  as_root "$b" network create "$bnet" >/dev/null
  # shellcheck disable=SC2086
  as_root podman $pargs network create "$pnet" >/dev/null
  as_root "$b" run -d --network "$bnet" --name "$keep" -- sleep 100000 >/dev/null
  # shellcheck disable=SC2086
  as_root podman $pargs run -d $limits --network "$pnet" --name "$keep" --rootfs "$root/rootfs" sleep 100000 >/dev/null 2>>"$root/podman.log" ||
    { cat "$root/podman.log" >&2; bench_die "podman run -d --network $pnet failed (rootful)"; }
  port=18190
  port2=18191
  cmds=(
    "$b run --rm --network $bnet -p 127.0.0.1:$port:80 -- true"
    "podman $pargs run --rm $limits --network $pnet -p 127.0.0.1:$port2:80 --rootfs $root/rootfs true"
  )
  echo "bridge-start.sh (rootful): warming up (each command once)"
  for c in "${cmds[@]}"; do
    # shellcheck disable=SC2086
    as_root $c 2>>"$root/podman.log" || as_root $c || bench_die "failed twice: $c"
  done
  as_root hyperfine -N "${ignore[@]}" "${gap[@]}" --warmup 3 --runs "$runs" --export-json "$root/start.json" "${cmds[@]}"
  cp "$root/start.json" "$bench_out/bridge-start-rootful-$stamp.json"
  report rootful "$bench_out/bridge-start-rootful-$stamp.json"
  pending=
  rootful_cleanup
}

# The cleanup of the mode under way, on any exit.
pending=
trap '[ -z "$pending" ] || "$pending"' EXIT
trap 'exit 130' INT TERM
for m in $modes; do "$m"; done
