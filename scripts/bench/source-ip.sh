#!/usr/bin/env bash
# The client-address path of the builtin forwarder (issue 15 item 3) against
# today's (slirp4netns:source_ip=false), side by side in one run. Run as root.
#
#   sudo scripts/bench/source-ip.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#        ROUNDS of each measurement, interleaved A/B (default 3), SECONDS per
#        iperf3 run (default 5), CONNECTIONS per latency run (default 500)
#
# The client address is kept only for clients not on loopback, so the client
# runs in a netns of its own: a client netns (10.77.0.2) joined by a veth pair
# to a server netns (10.77.0.1) in which the test user's burrow runs and
# publishes the ports. Neither is the host's. Two sandboxes on slirp4netns,
# each running iperf3 -s and scripts/bench/short-conn.ts serve:
#   client address     --network slirp4netns                  (the default)
#   forwarder address  --network slirp4netns:source_ip=false  (today's)
# Rows: iperf3 upload (client -> sandbox) and download (-R), receiver side,
# Gbit/s; short connections (connect, read a byte, close), median and p95 ms.
# Goal (the issue): client-address throughput >= 0.9 of today's, short-
# connection latency <= 1.1x. Writes .bench/source-ip-TIME.json.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=${1:-3}
secs=${2:-5}
conns=${3:-500}
# Its own daemon dirs: other bench scripts may run on this machine at the same time.
bench_runtime=/run/user/$bench_uid/burrow-bench-srcip
bench_state=$bench_home/.local/share/burrow-bench-srcip
burrow_env=(BURROW_RUNTIME_DIR="$bench_runtime" BURROW_STATE_DIR="$bench_state" BURROW_IDLE_TIMEOUT=60)
as_burrow_argv=(env -i -C "$bench_home" "${bench_env[@]}" "${burrow_env[@]}" "${setpriv_argv[@]}")
[ "$(id -u)" = 0 ] || bench_die "run as root: it makes network namespaces and runs burrow as $bench_user"
for c in iperf3 slirp4netns ip nsenter; do command -v "$c" >/dev/null || bench_die "$c is not installed"; done
mkdir -p "$bench_out"
b=$(bench_burrow)
tag=$$
client_ns=burrow-bench-srcip-c$tag
server_ns=burrow-bench-srcip-s$tag
work=$(as_user mktemp -d "$bench_tmp/bench-srcip.XXXXXX")
cp "$bench_repo/scripts/bench/short-conn.ts" "$work/" && chown "$bench_uid:$bench_gid" "$work/short-conn.ts"
bun_bin=$(readlink -f "$bench_bun")
server=10.77.0.1

cleanup() {
  burrow_cleanup "$b"
  ip netns del "$client_ns" 2>/dev/null || true
  ip netns del "$server_ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$client_ns"
ip netns add "$server_ns"
ip link add "bsc$tag" netns "$client_ns" type veth peer name "bss$tag" netns "$server_ns"
ip -n "$client_ns" addr add 10.77.0.2/24 dev "bsc$tag"
ip -n "$server_ns" addr add "$server/24" dev "bss$tag"
for ns in "$client_ns" "$server_ns"; do ip -n "$ns" link set lo up; done
ip -n "$client_ns" link set "bsc$tag" up
ip -n "$server_ns" link set "bss$tag" up

in_server() { nsenter --net="/run/netns/$server_ns" -- "${as_burrow_argv[@]}" "$@"; }
in_client() { nsenter --net="/run/netns/$client_ns" -- "$@"; }

# start NAME NETWORK IPERF_PORT SHORT_PORT
start() {
  in_server "$b" run -d --name "$1" --network "$2" -p "$3:5201" -p "$4:7000" -- \
    sh -c "iperf3 -s -D && exec $bun_bin $work/short-conn.ts serve 7000" >/dev/null
  for _ in $(seq 100); do
    in_client iperf3 -c "$server" -p "$3" -n 1 >/dev/null 2>&1 && in_client "$bun_bin" "$work/short-conn.ts" connect "$4" 1 "$server" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  bench_die "the servers in $1 did not answer through $server:$3 and :$4"
}

echo "source-ip.sh: $(machine_line)"
echo "source-ip.sh: $("$b" --version), $(iperf3 --version | head -1), $rounds rounds of ${secs}s iperf3 and $conns short connections each"
start bench-client 'slirp4netns' 15301 15302
start bench-forwarder 'slirp4netns:source_ip=false' 15311 15312
kept=$(in_server "$b" inspect --format '{{(index (index .NetworkSettings.SourceAddresses "5201/tcp") 0).SourceAddress}}' bench-client)
[ "$kept" = client ] || bench_die "bench-client does not keep client addresses ($kept): nothing to measure"

daemon=$(bench_daemons | while read -r pid; do case $(tr '\0' ' ' <"/proc/$pid/cmdline") in *" __daemon "*) echo "$pid" ;; esac; done | head -1)
[ -n "$daemon" ] || bench_die "no bench daemon found"
# daemon_ticks: the daemon's CPU time so far (utime + stime, clock ticks): the forwarder's cost.
daemon_ticks() { awk '{ print $14 + $15 }' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)

rows=()
# iperf NAME PORT [-R]: one run, receiver-side Gbit/s, and the daemon's CPU
# seconds per GiB moved (steadier than Gbit/s on a shared machine).
iperf() {
  local file=$work/iperf.json g t0 t1 cpu
  t0=$(daemon_ticks)
  in_client iperf3 -c "$server" -p "$2" -t "$secs" -J ${3:+"$3"} >"$file" || bench_die "iperf3 through $1 failed: $(json 'j[0].error' "$file")"
  t1=$(daemon_ticks)
  g=$(json '(j[0].end.sum_received.bits_per_second / 1e9).toFixed(2)' "$file")
  cpu=$(json "(($t1 - $t0) / $hz / (j[0].end.sum_received.bytes / 2 ** 30)).toFixed(3)" "$file")
  rows+=("{\"path\":\"$1\",\"what\":\"${3:-up}\",\"gbits\":$g,\"cpuPerGiB\":$cpu}")
  printf '  %-18s %-5s %6s Gbit/s   forwarder %s CPU s/GiB\n' "$1" "${3:-up}" "$g" "$cpu"
}
# short NAME PORT: median and p95 ms of $conns sequential short connections
short() {
  local out
  out=$(in_client "$bun_bin" "$work/short-conn.ts" connect "$2" "$conns" "$server")
  rows+=("{\"path\":\"$1\",\"what\":\"short\",\"stats\":$out}")
  printf '  %-18s short %s\n' "$1" "$out"
}

for r in $(seq "$rounds"); do
  echo "round $r"
  # Alternate which path goes first: a shared machine's load moves between runs.
  if [ $((r % 2)) = 1 ]; then order=(client forwarder); else order=(forwarder client); fi
  for p in "${order[@]}"; do
    base=$([ "$p" = client ] && echo 15301 || echo 15311)
    iperf "$p" "$base"
    iperf "$p" "$base" -R
    short "$p" $((base + 1))
  done
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_out/source-ip-$stamp.json
printf '%s\n' "${rows[@]}" | "$bench_bun" -e '
  const rows = (await Bun.stdin.text()).trim().split("\n").map((l) => JSON.parse(l));
  await Bun.write(process.argv[1], JSON.stringify({ rounds: Number(process.argv[2]), seconds: Number(process.argv[3]), rows }, null, 2) + "\n");' "$out" "$rounds" "$secs"
cp "$out" "$bench_out/source-ip-latest.json"

echo
json '(() => {
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
  const of = (path, what, f) => median(j[0].rows.filter((r) => r.path === path && r.what === what).map(f));
  const line = (name, c, f, unit, goal) => `  ${name.padEnd(24)} ${c.toFixed(3).padStart(8)} ${f.toFixed(3).padStart(8)} ${unit.padEnd(7)} ${(c / f).toFixed(2)}  ${goal(c / f) ? "met" : "MISSED"}`;
  const g = (r) => r.gbits;
  return [
    `source-ip.sh: medians of ${j[0].rounds} rounds, client address vs forwarder address (source_ip=false); JSON: ${process.argv[2]}`,
    `  ${"".padEnd(24)} ${"client".padStart(8)} ${"today".padStart(8)} ${"".padEnd(7)} ratio goal`,
    line("upload", of("client", "up", g), of("forwarder", "up", g), "Gbit/s", (x) => x >= 0.9),
    line("download (-R)", of("client", "-R", g), of("forwarder", "-R", g), "Gbit/s", (x) => x >= 0.9),
    line("forwarder CPU, upload", of("client", "up", (r) => r.cpuPerGiB), of("forwarder", "up", (r) => r.cpuPerGiB), "s/GiB", (x) => x <= 1 / 0.9),
    line("forwarder CPU, download", of("client", "-R", (r) => r.cpuPerGiB), of("forwarder", "-R", (r) => r.cpuPerGiB), "s/GiB", (x) => x <= 1 / 0.9),
    line("short connection median", of("client", "short", (r) => r.stats.medianMs), of("forwarder", "short", (r) => r.stats.medianMs), "ms", (x) => x <= 1.1),
    line("short connection p95", of("client", "short", (r) => r.stats.p95Ms), of("forwarder", "short", (r) => r.stats.p95Ms), "ms", (x) => x <= 1.1),
  ].join("\n");
})()' "$out" "${out#"$bench_repo"/}"
