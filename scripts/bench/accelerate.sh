#!/usr/bin/env bash
# --accelerate (issue 16), side by side in one run, as the test user. Run as root.
#
#   sudo scripts/bench/accelerate.sh [SECONDS] [CONNECTIONS] [START_RUNS]
#
# outbound  iperf3 -c from a sandbox to a host iperf3 -s on 127.0.0.1, through
#           the host alias 10.0.2.2 (slirp4netns:allow_host_loopback=true):
#           direct (the same client on the host), burrow --accelerate,
#           burrow slirp4netns, and pasta (--network pasta:--map-gw, to the
#           sandbox's default gateway, which pasta maps to the host's loopback)
# latency   CONNECTIONS sequential short TCP connections (connect, 1 byte,
#           close; scripts/bench/short-conn.ts) to a host server, the same three
#           ways and on the host itself
# start     hyperfine: run --rm --accelerate -p P:80 -- true against
#           run --rm -p P:80 -- true
# inbound   iperf3 -c on the host through -p 127.0.0.1:PORT:5201 to
#           iperf3 -s -B 0.0.0.0 in a slirp4netns sandbox: direct (both on the
#           host's loopback), burrow --accelerate (the server gets the
#           forwarder's host socket), burrow without (the forwarder), pasta's
#           own forwarding (--network pasta) and podman's rootlessport
#           (podman run --network slirp4netns -p, a --rootfs container)
# BENCH_SECTIONS (default "outbound inbound latency start") picks sections.
# Traffic is loopback only; everything is stopped on exit.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

secs=${1:-5}
conns=${2:-2000}
starts=${3:-20}
sections=" ${BENCH_SECTIONS:-outbound inbound latency start} "
want() { [[ $sections == *" $1 "* ]]; }
bench_require iperf3 hyperfine podman
b=$(bench_burrow)
work=$(as_user mktemp -d "$bench_tmp/bench-accel.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  burrow_cleanup "$b"
  podman_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

iport=$(free_port 15301)
"${as_user_argv[@]}" iperf3 -s -B 127.0.0.1 -p "$iport" >/dev/null 2>&1 &
pids+=($!)
sport=$(free_port $((iport + 1)))
"${as_user_argv[@]}" "$bench_bun" "$bench_repo/scripts/bench/short-conn.ts" serve "$sport" &
pids+=($!)
sleep 1

slirp=slirp4netns:allow_host_loopback=true
gw='$(ip route show default | { read -r _ _ g _; echo "$g"; })'

# iperf MODE...: receiver Gbit/s of one iperf3 run from where MODE says.
iperf() {
  local out
  case $1 in
  direct) out=$(as_user iperf3 -c 127.0.0.1 -p "$iport" -t "$secs" -J) ;;
  accelerate) out=$(as_burrow "$b" run --rm --accelerate --network "$slirp" -- iperf3 -c 10.0.2.2 -p "$iport" -t "$secs" -J) ;;
  slirp4netns) out=$(as_burrow "$b" run --rm --network "$slirp" -- iperf3 -c 10.0.2.2 -p "$iport" -t "$secs" -J) ;;
  pasta) out=$(as_burrow "$b" run --rm --network pasta:--map-gw -- sh -c "iperf3 -c $gw -p $iport -t $secs -J") ;;
  esac
  echo "$out" >"$work/iperf-$1.json"
  json 'j[0].end.sum_received.bits_per_second / 1e9' "$work/iperf-$1.json"
}

# latency MODE: short-conn's JSON for CONNECTIONS connections.
latency() {
  local s="$bench_repo/scripts/bench/short-conn.ts"
  case $1 in
  direct) as_user "$bench_bun" "$s" connect "$sport" "$conns" ;;
  accelerate) as_burrow "$b" run --rm --accelerate --network "$slirp" -- "$bench_bun" "$s" connect "$sport" "$conns" 10.0.2.2 ;;
  slirp4netns) as_burrow "$b" run --rm --network "$slirp" -- "$bench_bun" "$s" connect "$sport" "$conns" 10.0.2.2 ;;
  pasta) as_burrow "$b" run --rm --network pasta:--map-gw -- sh -c "exec $bench_bun $s connect $sport $conns $gw" ;;
  esac
}

if want outbound; then
echo "outbound iperf3, $secs s each (receiver Gbit/s); load $(cut -d' ' -f1 /proc/loadavg)"
declare -A gbit
for m in direct accelerate slirp4netns pasta; do
  gbit[$m]=$(iperf "$m" || echo 0)
  printf '  %-12s %6.2f Gbit/s  %s of direct\n' "$m" "${gbit[$m]}" "$(calc "${gbit[$m]} / ${gbit[direct]}")"
done

fi

# inbound MODE: receiver Gbit/s of one iperf3 run from the host to a server where MODE says.
inbound() {
  local port out name= flag waited=0
  port=$(free_port $((iport + 10)))
  case $1 in
  direct)
    "${as_user_argv[@]}" iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    pids+=($!)
    until ss -Htln "sport = :$port" | grep -q .; do sleep 0.05; done
    ;;
  accelerate | forwarder | pasta)
    name=bench-inbound-$1
    # -B 0.0.0.0: an IPv4 socket, as the 127.0.0.1 host socket is (an IPv6 one binds inside: docs/accelerate.md).
    flag=(--network slirp4netns)
    [ "$1" != accelerate ] || flag+=(--accelerate)
    [ "$1" != pasta ] || flag=(--network pasta)
    as_burrow "$b" run -d --name "$name" "${flag[@]}" -p "127.0.0.1:$port:5201" -- iperf3 -s -1 -B 0.0.0.0 --forceflush >/dev/null
    until as_burrow "$b" logs "$name" 2>/dev/null | grep -q "Server listening"; do
      ((++waited < 200)) || { echo "$1: iperf3 did not start in 10 s" >&2; return 1; }
      sleep 0.05
    done
    ;;
  rootlessport)
    # podman's rootless default for -p with slirp4netns; stderr to a file (podman warns that "/" is not a shared mount).
    as_user podman run -d --network slirp4netns -p "127.0.0.1:$port:5201" --label burrow.bench=1 \
      --rootfs "$bench_rootfs" /usr/bin/iperf3 -s -1 --forceflush >/dev/null 2>"$work/podman.log" ||
      { cat "$work/podman.log" >&2; return 1; }
    until as_user podman logs -l 2>/dev/null | grep -q "Server listening"; do
      ((++waited < 200)) || { echo "rootlessport: iperf3 did not start in 10 s" >&2; return 1; }
      sleep 0.05
    done
    ;;
  esac
  out=$(as_user iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J)
  [ -z "${name:-}" ] || as_burrow "$b" rm -f "$name" >/dev/null
  [ "$1" != rootlessport ] || podman_cleanup
  echo "$out" >"$work/inbound-$1.json"
  json 'j[0].end.sum_received.bits_per_second / 1e9' "$work/inbound-$1.json"
}

if want inbound; then
echo "inbound iperf3 through -p 127.0.0.1:PORT:5201, $secs s each (receiver Gbit/s); load $(cut -d' ' -f1 /proc/loadavg)"
declare -A ingbit
for m in direct accelerate forwarder pasta rootlessport; do
  ingbit[$m]=$(inbound "$m" || echo 0)
  printf '  %-12s %6.2f Gbit/s  %s of direct\n' "$m" "${ingbit[$m]}" "$(calc "${ingbit[$m]} / ${ingbit[direct]}")"
done

fi

if want latency; then
echo "latency, $conns sequential short connections"
declare -A med
for m in direct accelerate slirp4netns pasta; do
  latency "$m" >"$work/lat-$m.json" || echo '{"medianMs":0,"meanMs":0}' >"$work/lat-$m.json"
  med[$m]=$(json 'j[0].meanMs' "$work/lat-$m.json")
  printf '  %-12s mean %6.3f ms  median %6.3f ms  %s x direct (mean)\n' "$m" "${med[$m]}" "$(json 'j[0].medianMs' "$work/lat-$m.json")" "$(calc "${med[$m]} / ${med[direct]}")"
done

fi

if want start; then
echo "start, $starts runs each"
p=$(free_port 18380)
as_burrow "$b" run --rm -- true >/dev/null
as_burrow hyperfine -N --warmup 3 --runs "$starts" --export-json "$work/start.json" \
  -n accelerate "$b run --rm --accelerate -p 127.0.0.1:$p:80 -- true" \
  -n plain "$b run --rm -p 127.0.0.1:$p:80 -- true" >/dev/null
json 'j[0].results.map((r) => `  ${r.command.padEnd(12)} median ${(r.median * 1000).toFixed(1)} ms`).join("\n")' "$work/start.json"
json '`  ratio ${(j[0].results[0].median / j[0].results[1].median).toFixed(3)} (goal <= 1.15)`' "$work/start.json"
fi
