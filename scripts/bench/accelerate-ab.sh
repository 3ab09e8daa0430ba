#!/usr/bin/env bash
# --accelerate's short-connection latency, two builds side by side (issue 16):
# the same loop as accelerate.sh's latency section, from one long-lived
# accelerated sandbox of each build (each with its own daemon and dirs) and
# from the host, interleaved round by round, so that a shared machine's load
# swings hit all three alike. Run as root.
#
#   sudo scripts/bench/accelerate-ab.sh BURROW_A BURROW_B [ROUNDS] [CONNECTIONS]
#
# Prints per round the median and mean ms of CONNECTIONS sequential short
# connections (scripts/bench/short-conn.ts) to a host server on 127.0.0.1,
# reached through the host alias (slirp4netns allow_host_loopback=true), and
# at the end the means over the rounds with their ratio to direct.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 2 ] || bench_die "usage: accelerate-ab.sh BURROW_A BURROW_B [ROUNDS] [CONNECTIONS]"
bin_a=$1 bin_b=$2 rounds=${3:-6} conns=${4:-2000}
bench_require
short=$bench_repo/scripts/bench/short-conn.ts

# as_ab A|B BURROW ARGS...: BURROW as the test user with that side's own daemon dirs.
as_ab() {
  local side=$1
  shift
  env -i -C "$bench_home" "${bench_env[@]}" BURROW_RUNTIME_DIR="/run/user/$bench_uid/burrow-bench-ab-$side" \
    BURROW_STATE_DIR="$bench_home/.local/share/burrow-bench-ab-$side" BURROW_IDLE_TIMEOUT=30 "${setpriv_argv[@]}" "$@"
}

port=$(free_port 15401)
"${as_user_argv[@]}" "$bench_bun" "$short" serve "$port" &
server=$!
cleanup() {
  as_ab A "$bin_a" rm -f bench-ab >/dev/null 2>&1 || true
  as_ab B "$bin_b" rm -f bench-ab >/dev/null 2>&1 || true
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
until ss -Htln "sport = :$port" | grep -q .; do sleep 0.05; done

for side in A B; do
  bin=$bin_a
  [ "$side" = A ] || bin=$bin_b
  as_ab "$side" "$bin" run -d --name bench-ab --accelerate --network slirp4netns:allow_host_loopback=true -- sleep 3600 >/dev/null
done

# loop WHO: "MEDIAN MEAN" (ms) of one run of the loop.
loop() {
  local out
  case $1 in
  direct) out=$(as_user "$bench_bun" "$short" connect "$port" "$conns") ;;
  A) out=$(as_ab A "$bin_a" exec bench-ab -- "$bench_bun" "$short" connect "$port" "$conns" 10.0.2.2) ;;
  B) out=$(as_ab B "$bin_b" exec bench-ab -- "$bench_bun" "$short" connect "$port" "$conns" 10.0.2.2) ;;
  esac
  "$bench_bun" -e 'const j = JSON.parse(process.argv[1]); console.log(j.medianMs.toFixed(3), j.meanMs.toFixed(3))' "$out"
}

echo "$conns sequential short connections per run, $rounds rounds; A=$bin_a B=$bin_b"
interleave_rounds "$rounds" direct A B
