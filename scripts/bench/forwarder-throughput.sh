#!/usr/bin/env bash
# Throughput of burrow's builtin port forwarder against direct loopback (and
# against podman's rootlessport when it is installed).
#
#   sudo scripts/bench/forwarder-throughput.sh [SECONDS] [ENGINE...]
#     SECONDS  per iperf3 run (default 10)
#     ENGINE   burrow (the builtin forwarder), rootlessport
#              (/usr/lib/podman/rootlessport, podman's helper, if present);
#              default: both
#
# Makes a test network namespace (burrow-t-XXXXXXXX) with 10.0.2.100 on an
# interface of its own and an iperf3 server there, and forwards a free
# 127.0.0.1 port to it: with the forwarder compiled the way dist/burrow embeds
# it (test/helpers/forwarder-harness.ts + src/ports/connector-worker.ts), or with
# rootlessport fed the same mapping. Runs iperf3 -c 127.0.0.1 upload and -R
# download through each, and against an iperf3 server on host loopback.
# Prints Gbit/s, the ratio to direct, and the forwarder's CPU time per GiB
# moved (steadier than throughput on a busy 2-core machine).
# Needs root (ip netns) and iperf3. Traffic stays on loopback and in the
# netns; everything it made is removed on exit, also on failure or Ctrl-C.
set -euo pipefail

secs=${1:-10}
shift || true
engines=("$@")
rootlessport=/usr/lib/podman/rootlessport
if [ ${#engines[@]} = 0 ]; then
  engines=(burrow)
  [ -x "$rootlessport" ] && engines+=(rootlessport)
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bun="$repo/node_modules/.bin/bun"
ns="burrow-t-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
addr=10.0.2.100
work=$(mktemp -d)
pids=()

cleanup() {
  local pid
  exec 3>&- 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns delete "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "forwarder-throughput: run as root (it makes a network namespace)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "forwarder-throughput: iperf3 is not installed (apt-get install iperf3)" >&2; exit 1; }

ip netns add "$ns"
ip -n "$ns" link set lo up
if ! ip -n "$ns" link add d0 type dummy 2>/dev/null; then
  ip -n "$ns" link add d0 type veth peer name d1
  ip -n "$ns" link set d1 up
fi
ip -n "$ns" addr add "$addr/24" dev d0
ip -n "$ns" link set d0 up

free_port() { "$bun" -e 'const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }); console.log(l.port); l.stop(true)'; }

# Sandbox side: iperf3 server on the sandbox's own address.
nsenter --net="/run/netns/$ns" iperf3 -s -B "$addr" -p 5201 >/dev/null 2>&1 &
pids+=($!)
# Host side, for the direct figure.
direct_port=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$direct_port" >/dev/null 2>&1 &
pids+=($!)

"$bun" build --compile "$repo/test/helpers/forwarder-harness.ts" "$repo/src/ports/connector-worker.ts" --outfile "$work/forwarder" >/dev/null

# start_forwarder burrow|rootlessport: starts it on a free port (fd 3 keeps it alive);
# sets fwd_port and fwd_pid.
start_forwarder() {
  rm -f "$work/in" "$work/out" "$work/ready"
  mkfifo "$work/in"
  fwd_port=$(free_port)
  if [ "$1" = rootlessport ]; then
    # podman's own helper, given the mapping the way podman does (JSON on
    # stdin, exit pipe on fd 3, ready pipe on fd 4).
    mkdir -p "$work/rlp"
    printf '{"Mappings":[{"host_ip":"127.0.0.1","container_port":5201,"host_port":%s,"range":1,"protocol":"tcp"}],"NetNSPath":"/run/netns/%s","ExitFD":3,"ReadyFD":4,"TmpDir":"%s","ChildIP":"%s","ContainerID":"bench","RootlessCNI":false}' \
      "$fwd_port" "$ns" "$work/rlp" "$addr" >"$work/rlp.json"
    mkfifo "$work/ready"
    "$rootlessport" <"$work/rlp.json" 3<"$work/in" 4>"$work/ready" >"$work/rlp.log" 2>&1 &
    fwd_pid=$!
    exec 3>"$work/in"
    head -c1 "$work/ready" >/dev/null
  else
    "$work/forwarder" "/run/netns/$ns" "tcp:127.0.0.1:$fwd_port:$addr:5201" <"$work/in" >"$work/out" &
    fwd_pid=$!
    exec 3>"$work/in"
    for _ in $(seq 100); do [ -s "$work/out" ] && break; sleep 0.05; done
    grep -q '"ports"' "$work/out" || { cat "$work/out" >&2; exit 1; }
  fi
  pids+=("$fwd_pid")
  sleep 0.2
}
stop_forwarder() {
  exec 3>&-
  wait "$fwd_pid" 2>/dev/null || true
}

# CPU ticks used so far by the forwarder and its children (rootlessport has one).
cpu_ticks() {
  local total=0 p f
  for p in "$fwd_pid" $(cat /proc/"$fwd_pid"/task/*/children 2>/dev/null); do
    f=$(cat /proc/"$p"/stat 2>/dev/null) || continue
    f=${f##*) }
    set -- $f
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# gbits PORT [iperf3 options...]: receiver-side Gbit/s of one run; also sets
# moved_gib for the CPU-per-GiB figure.
gbits() {
  local port=$1
  shift
  iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J "$@" >"$work/run.json"
  "$bun" -e 'const j = await Bun.file(process.argv[1]).json(); if (j.error) { console.error(j.error); process.exit(1) }
    const r = j.end.sum_received; console.log((r.bits_per_second / 1e9).toFixed(2), (r.bytes / 2 ** 30).toFixed(3))' "$work/run.json"
}

calc() { "$bun" -e "console.log(($1).toFixed(2))"; }
row() { printf '%-36s %7s Gbit/s%s\n' "$1" "$2" "${3:-}"; }
hz=$(getconf CLK_TCK)
sleep 0.3 # let both iperf3 servers listen

read -r direct_up _ < <(gbits "$direct_port")
read -r direct_down _ < <(gbits "$direct_port" -R)
row "direct loopback (upload)" "$direct_up"
row "direct loopback (-R download)" "$direct_down"
for engine in "${engines[@]}"; do
  start_forwarder "$engine"
  for dir in upload download; do
    opt=()
    [ $dir = download ] && opt=(-R)
    t0=$(cpu_ticks)
    read -r g gib < <(gbits "$fwd_port" "${opt[@]}")
    t1=$(cpu_ticks)
    direct=$direct_up
    [ $dir = download ] && direct=$direct_down
    row "$engine ($dir)" "$g" "   ratio $(calc "$g / $direct")   cpu $(calc "($t1 - $t0) / $hz / $gib") s/GiB"
  done
  stop_forwarder
done
