#!/usr/bin/env bash
# TCP throughput through a published port, host -> sandbox, as the test user:
# iperf3 -c 127.0.0.1:PORT on the host, iperf3 -s behind the port. Run as root.
#
#   sudo scripts/bench/throughput.sh [SECONDS]     per iperf3 run (default 10)
#
# Rows (each its own free port from 15201 up):
#   direct loopback         iperf3 -s -B 127.0.0.1 on the host (the ceiling)
#   burrow (default)        burrow run -d -p PORT:5201 -- iperf3 -s
#                           slirp4netns network, burrow's builtin forwarder
#   podman rootlessport     podman run -d --network slirp4netns -p PORT:5201
#                           --rootfs DIR /usr/bin/iperf3 -s (setup-peers.sh put
#                           iperf3 and its libraries in DIR)
#   burrow slirp4netns      burrow run -d --network slirp4netns:port_handler=slirp4netns ...
#   rootlesskit builtin     rootlesskit --net=slirp4netns --port-driver=builtin
#                           -p 127.0.0.1:PORT:5201/tcp iperf3 -s (if installed)
# Prints receiver-side Gbit/s and the ratio to direct; goal (the issue):
# burrow >= rootlessport and >= 0.8 of direct. Writes .bench/throughput-TIME.json.
# Traffic is loopback only; servers, sandboxes and containers are removed on
# exit, also on failure or Ctrl-C.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

secs=${1:-10}
bench_require iperf3 podman
b=$(bench_burrow)
work=$(as_user mktemp -d "$bench_tmp/bench-throughput.XXXXXX")
pids=()
has_rootlesskit=0
command -v rootlesskit >/dev/null && has_rootlesskit=1

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

# wait_server PORT: until an iperf3 test of one byte gets through PORT (a
# forwarder accepts before the server behind it listens, so connecting is
# not enough). 10 s at most.
wait_server() {
  for _ in $(seq 100); do
    as_user iperf3 -c 127.0.0.1 -p "$1" -n 1 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  bench_die "no iperf3 server answered on 127.0.0.1:$1"
}

results=()
# measure NAME PORT: one iperf3 run of $secs; prints and records Gbit/s.
measure() {
  local name=$1 port=$2 file
  file=$work/$(echo "$name" | tr -c 'a-z0-9\n' '-').json
  wait_server "$port"
  cpu_busy >/dev/null
  if ! as_user iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J >"$file"; then
    json 'j[0].error' "$file" >&2 || true
    bench_die "iperf3 through $name failed"
  fi
  local g busy
  busy=$(cpu_busy)
  g=$(json '(j[0].end.sum_received.bits_per_second / 1e9).toFixed(2)' "$file")
  results+=("$name=$g=$busy")
  printf '  %-22s %6s Gbit/s   CPU %s%% busy\n' "$name" "$g" "$busy"
}


echo "throughput.sh: $(machine_line)"
versions="$("$b" --version), $(podman --version), $(iperf3 --version | head -1)"
[ $has_rootlesskit = 0 ] || versions+=", $(rootlesskit --version)"
echo "throughput.sh: $versions"
echo "throughput.sh: iperf3 -c 127.0.0.1 -t $secs, host -> sandbox, receiver side"

port=$(free_port 15201)
"${as_user_argv[@]}" iperf3 -s -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
pids+=($!)
measure "direct loopback" "$port"
direct_port=$port

port=$(free_port $((port + 1)))
as_burrow "$b" run -d --name bench-iperf-builtin -p "127.0.0.1:$port:5201" -- iperf3 -s >/dev/null
measure "burrow (default)" "$port"
as_burrow "$b" rm -f bench-iperf-builtin >/dev/null

port=$(free_port $((port + 1)))
# stderr to a file: podman warns that "/" is not a shared mount (true here,
# and harmless for a --rootfs container without volumes).
as_user podman run -d --network slirp4netns -p "127.0.0.1:$port:5201" --label burrow.bench=1 \
  --rootfs "$bench_rootfs" /usr/bin/iperf3 -s >/dev/null 2>"$work/podman.log" ||
  { cat "$work/podman.log" >&2; bench_die "podman run failed"; }
measure "podman rootlessport" "$port"
podman_cleanup

port=$(free_port $((port + 1)))
as_burrow "$b" run -d --name bench-iperf-slirp --network slirp4netns:port_handler=slirp4netns \
  -p "127.0.0.1:$port:5201" -- iperf3 -s >/dev/null
measure "burrow slirp4netns" "$port"
as_burrow "$b" rm -f bench-iperf-slirp >/dev/null

if [ $has_rootlesskit = 1 ]; then
  port=$(free_port $((port + 1)))
  # RootlessKit keeps its state under a temporary dir: TMPDIR is the test
  # user's own (the machine's /tmp is not writable for users).
  "${as_user_argv[@]}" rootlesskit --net=slirp4netns --port-driver=builtin -p "127.0.0.1:$port:5201/tcp" \
    iperf3 -s >"$work/rootlesskit.log" 2>&1 &
  rootlesskit_pid=$!
  pids+=("$rootlesskit_pid")
  measure "rootlesskit builtin" "$port"
  kill -TERM "$rootlesskit_pid" && wait "$rootlesskit_pid" || true
else
  echo "  rootlesskit builtin    (rootlesskit is not installed: skipped)"
fi

# Direct again: other work on the machine moves the ceiling; ratios use the
# mean of both direct runs.
measure "direct loopback again" "$direct_port"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_out/throughput-$stamp.json
printf '%s\n' "${results[@]}" | "$bench_bun" -e '
  const rows = (await Bun.stdin.text()).trim().split("\n").map((l) => { const [busy, gbits, ...name] = l.split("=").reverse(); return { name: name.reverse().join("="), gbits: Number(gbits), cpuBusyPercent: Number(busy) }; });
  await Bun.write(process.argv[1], JSON.stringify({ seconds: Number(process.argv[2]), rows }, null, 2) + "\n");' "$out" "$secs"
cp "$out" "$bench_out/throughput-latest.json"

echo
json '(() => {
  const g = Object.fromEntries(j[0].rows.map((r) => [r.name, r.gbits]));
  const d = (g["direct loopback"] + g["direct loopback again"]) / 2, b = g["burrow (default)"], rp = g["podman rootlessport"];
  const rows = j[0].rows.filter((r) => !r.name.startsWith("direct"));
  return [
    `throughput.sh: Gbit/s and ratio to direct (mean of both direct runs: ${d.toFixed(2)}); JSON: ${process.argv[2]}`,
    ...rows.map((r) => `  ${r.name.padEnd(22)} ${r.gbits.toFixed(2).padStart(6)}   ${(r.gbits / d).toFixed(2)}   CPU ${r.cpuBusyPercent}% busy`),
    `  goals: burrow >= 0.80 of direct: ${b / d >= 0.8 ? "met" : "MISSED"} (${(b / d).toFixed(2)}); burrow >= rootlessport: ${b >= rp ? "met" : "MISSED"} (${(b / rp).toFixed(2)})`,
  ].join("\n");
})()' "$out" "${out#"$bench_repo"/}"
