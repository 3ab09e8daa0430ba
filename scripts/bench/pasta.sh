#!/usr/bin/env bash
# burrow's two rootless backends side by side in one run, as the test user:
# slirp4netns with burrow's builtin forwarder (-p) against pasta (which
# publishes ports itself). Decides the rootless default (issue 15 item 2,
# docs/benchmarks.md "Rootless backends"). Run as root.
#
#   sudo scripts/bench/pasta.sh [RUNS] [SECONDS] [N]    defaults 20, 5, 10
#
# Rows, each for --network slirp4netns and --network pasta:
#   start      hyperfine, RUNS runs: burrow run --rm --network M -p PORT:80 -- true
#   inbound    iperf3 -c 127.0.0.1:PORT -t SECONDS, host -> sandbox server (receiver side)
#   reverse    the same with -R: sandbox server -> host client over the published port
#   outbound   iperf3 -c inside the sandbox to a server on the host's 127.0.0.1
#              (slirp4netns:allow_host_loopback=true to 10.0.2.2; pasta:--map-gw
#              to the gateway address, which pasta maps to the host)
#   short      500 sequential connect / one byte / close through the published
#              port (scripts/bench/short-conn.ts), median and p95 in ms
#   memory     N sandboxes with one published port each: growth of burrow's
#              processes plus the network helpers (slirp4netns or pasta), per sandbox
# Writes .bench/pasta-TIME.json; everything started is removed on exit.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs=${1:-20}
secs=${2:-5}
n=${3:-10}
# Its own daemon dirs: other bench scripts may run on this machine at the same time.
bench_runtime=/run/user/$bench_uid/burrow-bench-pasta
bench_state=$bench_home/.local/share/burrow-bench-pasta
burrow_env=(BURROW_RUNTIME_DIR="$bench_runtime" BURROW_STATE_DIR="$bench_state" BURROW_IDLE_TIMEOUT=60)
as_burrow_argv=(env -i -C "$bench_home" "${bench_env[@]}" "${burrow_env[@]}" "${setpriv_argv[@]}")
[ "$(id -u)" = 0 ] || bench_die "run as root: it runs the measured commands as $bench_user with setpriv"
for c in hyperfine iperf3 slirp4netns pasta; do command -v "$c" >/dev/null || bench_die "$c is not installed"; done
mkdir -p "$bench_out"
b=$(bench_burrow)
work=$(as_user mktemp -d "$bench_tmp/bench-pasta.XXXXXX")
cp "$bench_repo/scripts/bench/short-conn.ts" "$work/" && chown "$bench_uid:$bench_gid" "$work/short-conn.ts"
bun_bin=$(readlink -f "$bench_bun")
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  burrow_cleanup "$b"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# sums: "burrow_kB helper_kB" over the test user's processes: burrow's own
# (the binary, the holder) and the network helpers (slirp4netns, pasta/passt).
sums() {
  local pid exe cmd kb bk=0 hk=0
  for pid in $(pgrep -u "$bench_uid"); do
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || continue
    kb=$(rss_kb "$pid")
    if [ "$exe" = "$b" ] || [[ $cmd == "burrow-holder "* ]]; then bk=$((bk + kb))
    else case ${exe##*/} in slirp4netns | pasta* | passt*) hk=$((hk + kb)) ;; esac; fi
  done
  echo "$bk $hk"
}
wait_iperf() {
  for _ in $(seq 100); do
    as_user iperf3 -c 127.0.0.1 -p "$1" -n 1 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  bench_die "no iperf3 server answered on 127.0.0.1:$1"
}
gbits() { json '(j[0].end.sum_received.bits_per_second / 1e9).toFixed(2)' "$1"; }

echo "pasta.sh: $(machine_line)"
echo "pasta.sh: $("$b" --version), $(slirp4netns --version | head -1), $(pasta --version 2>&1 | head -1), $(iperf3 --version | head -1)"
results=()

# ---------------------------------------------------------------- start
p1=$(free_port 18180)
p2=$(free_port $((p1 + 1)))
cmds=("$b run --rm --network slirp4netns -p $p1:80 -- true" "$b run --rm --network pasta -p $p2:80 -- true")
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086 # plain words, as hyperfine -N splits them
  as_burrow $c || bench_die "failed: $c"
done
as_burrow hyperfine -N -i --warmup 3 --runs "$runs" --export-json "$work/start.json" "${cmds[@]}" >/dev/null
read -r s_slirp s_pasta < <(json 'j[0].results.map((r) => (r.median * 1000).toFixed(1)).join(" ")' "$work/start.json")
# hyperfine -i: a failed run does not end the bench, and it is counted, not hidden.
read -r f_slirp f_pasta < <(json 'j[0].results.map((r) => r.exit_codes.filter((c) => c !== 0).length).join(" ")' "$work/start.json")
results+=("start_ms slirp4netns=$s_slirp pasta=$s_pasta" "start_failed_runs slirp4netns=$f_slirp pasta=$f_pasta")
echo "  start (median ms)            slirp4netns $s_slirp   pasta $s_pasta   (failed runs: $f_slirp, $f_pasta of $runs)"

# ---------------------------------------------------------------- throughput and short connections
hport=$(free_port 15301)
"${as_user_argv[@]}" iperf3 -s -B 127.0.0.1 -p "$hport" >/dev/null 2>&1 &
pids+=($!)
wait_iperf "$hport"
declare -A out_net=([slirp4netns]="slirp4netns:allow_host_loopback=true" [pasta]="pasta:--map-gw")
for m in slirp4netns pasta; do
  port=$(free_port 15311)
  as_burrow "$b" run -d --name "bench-iperf-$m" --network "$m" -p "127.0.0.1:$port:5201" -- iperf3 -s >/dev/null
  wait_iperf "$port"
  as_user iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J >"$work/in-$m.json"
  as_user iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -R -J >"$work/rev-$m.json"
  as_burrow "$b" rm -f "bench-iperf-$m" >/dev/null
  target=10.0.2.2
  # pasta copies the host's routes: its gateway is the host's, mapped to the host by --map-gw.
  [ "$m" = pasta ] && target=$(ip -4 route show default | awk '{ print $3; exit }')
  as_burrow "$b" run --rm --network "${out_net[$m]}" -- iperf3 -c "$target" -p "$hport" -t "$secs" -J >"$work/out-$m.json"
  port=$(free_port 15321)
  as_burrow "$b" run -d --name "bench-short-$m" --network "$m" -p "127.0.0.1:$port:7000" -- "$bun_bin" "$work/short-conn.ts" serve 7000 >/dev/null
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && as_user "$bun_bin" "$work/short-conn.ts" connect "$port" 1 >/dev/null 2>&1 && break; sleep 0.1; done
  as_user "$bun_bin" "$work/short-conn.ts" connect "$port" 500 >"$work/short-$m.json"
  as_burrow "$b" rm -f "bench-short-$m" >/dev/null
  results+=("inbound_gbits $m=$(gbits "$work/in-$m.json")" "reverse_gbits $m=$(gbits "$work/rev-$m.json")" "outbound_gbits $m=$(gbits "$work/out-$m.json")")
  results+=("short_median_ms $m=$(json 'j[0].medianMs.toFixed(3)' "$work/short-$m.json")" "short_p95_ms $m=$(json 'j[0].p95Ms.toFixed(3)' "$work/short-$m.json")")
  echo "  $m: inbound $(gbits "$work/in-$m.json") Gbit/s, reverse $(gbits "$work/rev-$m.json"), outbound $(gbits "$work/out-$m.json"); short connections $(json '`median ${j[0].medianMs.toFixed(3)} ms, p95 ${j[0].p95Ms.toFixed(3)} ms`' "$work/short-$m.json")"
done

# ---------------------------------------------------------------- memory
for m in slirp4netns pasta; do
  burrow_cleanup "$b"
  port=$(free_port 18280)
  as_burrow "$b" run --rm --network "$m" -p "127.0.0.1:$port:80" -- true
  sleep 2
  read -r b0 h0 < <(sums)
  ids=()
  for _ in $(seq "$n"); do
    port=$(free_port "$port")
    ids+=("$(as_burrow "$b" run -d --network "$m" -p "127.0.0.1:$port:80" -- sleep 600)")
    port=$((port + 1))
  done
  sleep 3
  read -r b1 h1 < <(sums)
  as_burrow "$b" rm -f "${ids[@]}" >/dev/null
  per=$(calc "(($b1 - $b0) + ($h1 - $h0)) / $n / 1024")
  results+=("memory_mib_per_sandbox $m=$per" "memory_helper_mib_per_sandbox $m=$(calc "($h1 - $h0) / $n / 1024")" "memory_burrow_mib_per_sandbox $m=$(calc "($b1 - $b0) / $n / 1024")")
  echo "  $m memory: $per MiB per sandbox (burrow $(calc "($b1 - $b0) / $n / 1024"), helper $(calc "($h1 - $h0) / $n / 1024"))"
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_out/pasta-$stamp.json
printf '%s\n' "${results[@]}" | "$bench_bun" -e '
  const rows = {};
  for (const l of (await Bun.stdin.text()).trim().split("\n")) { const [row, ...cells] = l.split(" "); rows[row] = Object.fromEntries(cells.map((c) => { const [k, v] = c.split("="); return [k, Number(v)]; })); }
  await Bun.write(process.argv[1], JSON.stringify({ runs: Number(process.argv[2]), seconds: Number(process.argv[3]), sandboxes: Number(process.argv[4]), rows }, null, 2) + "\n");' "$out" "$runs" "$secs" "$n"
echo "pasta.sh: JSON: ${out#"$bench_repo"/}"
