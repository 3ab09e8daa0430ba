#!/usr/bin/env bash
# netavark networks: burrow against podman, each on a network of netavark,
# warm start with a published port, side by side in one hyperfine run, as
# the test user (rootless). Run as root.
#
#   sudo scripts/bench/netavark.sh [RUNS]     RUNS per command (30)
#
#      burrow run --rm --network burrow-nv -p 127.0.0.1:P:80 -- true
#      podman run --rm --network podman-nv -p 127.0.0.1:P2:80 --rootfs DIR true
#
# Goal (issue 14): burrow <= 1/5 of podman. Warm: one sandbox and one
# container stay up on their networks, so both rootless network namespaces
# (and aardvark-dns) are up; each command runs once, then 3 warm-ups.
#
# burrow: BURROW_NETWORK_BACKEND=netavark, its network files and netavark
# state in private dirs (never podman's). podman: CONTAINERS_CONF names a
# file of this run's (runc, cgroupfs, events to a file, netavark), and
# --network-config-dir a private dir, so the user's own podman networks and
# configuration are neither read nor changed. Everything is removed on exit.
# Writes .bench/netavark-TIME.json (hyperfine's export).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs=${1:-30}
[[ $runs =~ ^[1-9][0-9]*$ ]] || bench_die "RUNS is a whole number above 0"
bench_require hyperfine podman
command -v /usr/lib/podman/netavark >/dev/null || command -v netavark >/dev/null || bench_die "netavark is not installed (apt-get install netavark aardvark-dns)"
b=$(bench_burrow)

# Dirs of this script's own (another bench may use lib.sh's at the same time).
bench_runtime=/run/user/$bench_uid/burrow-bench-nv
bench_state=$bench_home/.local/share/burrow-bench-nv
work=$(as_user mktemp -d "$bench_tmp/bench-netavark.XXXXXX")
burrow_env=(BURROW_RUNTIME_DIR="$bench_runtime" BURROW_STATE_DIR="$bench_state" BURROW_IDLE_TIMEOUT=60
  BURROW_NETWORK_BACKEND=netavark BURROW_NETWORKS_DIR="$work/burrow-networks")
as_burrow_argv=(env -i -C "$bench_home" "${bench_env[@]}" "${burrow_env[@]}" "${setpriv_argv[@]}")
pconf=$work/containers.conf
cat >"$pconf" <<CONF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
CONF
chown "$bench_uid:$bench_gid" "$pconf"
pod() { as_user env CONTAINERS_CONF="$pconf" podman --network-config-dir "$work/podman-networks" "$@"; }
bnet=burrow-nv
pnet=podman-nv
srv=bench-nv-srv

cleanup() {
  local ids
  if [ -S "$bench_runtime/control.sock" ]; then
    ids=$(as_burrow "$b" ps -a -q 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || as_burrow "$b" rm -f $ids >/dev/null 2>&1 || true
    as_burrow "$b" network rm -f "$bnet" >/dev/null 2>&1 || true
  fi
  burrow_cleanup "$b"
  rm -rf "$bench_state" "$bench_runtime"
  ids=$(pod ps -a -q --filter label=burrow.bench 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || pod rm -f -t 0 $ids >/dev/null 2>&1 || true
  pod network rm -f "$pnet" >/dev/null 2>&1 || true
  podman_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "netavark.sh: $(machine_line)"
echo "netavark.sh: $("$b" --version), $(podman --version), $(/usr/lib/podman/netavark --version 2>/dev/null || netavark --version), $(hyperfine --version)"

as_user mkdir -p "$work/burrow-networks" "$work/podman-networks"
as_burrow "$b" network create "$bnet" >/dev/null
pod network create "$pnet" >/dev/null 2>>"$work/podman.log" || { cat "$work/podman.log" >&2; bench_die "podman network create $pnet failed"; }
as_burrow "$b" run -d --network "$bnet" --name "$srv" -- sleep 3600 >/dev/null
pod run -d --network "$pnet" --name "$srv" --label burrow.bench=1 --rootfs "$bench_rootfs" sleep 3600 >/dev/null 2>>"$work/podman.log" ||
  { cat "$work/podman.log" >&2; bench_die "podman run -d --network $pnet failed"; }

port=$(free_port 18190)
port2=$(free_port $((port + 1)))
cmds=(
  "env ${burrow_env[*]} $b run --rm --network $bnet -p 127.0.0.1:$port:80 -- true"
  "env CONTAINERS_CONF=$pconf podman --network-config-dir $work/podman-networks run --rm --network $pnet -p 127.0.0.1:$port2:80 --label burrow.bench=1 --rootfs $bench_rootfs true"
)
echo "netavark.sh: warming up (each command once)"
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086 # plain words, as hyperfine -N splits them
  as_user $c >/dev/null 2>>"$work/podman.log" || as_user $c >/dev/null || bench_die "failed twice: $c"
done
ignore=(-i)
[ -z "${BENCH_STRICT:-}" ] || ignore=()
as_user hyperfine -N "${ignore[@]}" --warmup 3 --runs "$runs" --export-json "$work/start.json" "${cmds[@]}"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_out/netavark-$stamp.json
cp "$work/start.json" "$out"
cp "$out" "$bench_out/netavark-latest.json"
json '(() => {
  const [b, p] = j[0].results.map((r) => r.median * 1000);
  const failed = j[0].results.map((r) => r.exit_codes.filter((c) => c !== 0).length);
  return `netavark.sh: netavark -p start, burrow ${b.toFixed(1)} ms / podman ${p.toFixed(1)} ms = ${(b / p).toFixed(3)} (1/${(p / b).toFixed(1)})  goal <= 0.200: ${b / p <= 0.2 ? "met" : "MISSED"}` +
    (failed.some((n) => n) ? `  (failed runs: burrow ${failed[0]}, podman ${failed[1]})` : "");
})()' "$out"
