#!/usr/bin/env bash
# --accelerate's short-connection latency next to the mechanism's floor on
# this machine (issue 16): the same loop (scripts/bench/short-conn.ts,
# CONNECTIONS sequential connect / one byte / close to a host server on
# 127.0.0.1) run directly, under scripts/bench/accelerate-floor.c (a minimal
# C supervisor doing only what every accelerated connect needs: the trap,
# the sockaddr read, a twin socket connected and installed with ADDFD, the
# answer), and from an accelerated burrow sandbox through the host alias
# (slirp4netns allow_host_loopback=true), interleaved round by round so that
# the machine's swings hit all three alike. Run as root; needs a C compiler.
#
#   sudo scripts/bench/accelerate-floor.sh [ROUNDS] [CONNECTIONS]
#
# Prints per round the median and mean ms of each, then the means over the
# rounds with their ratio to direct.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=${1:-6} conns=${2:-2000}
bench_require
cc=$(command -v cc || command -v gcc || true)
[ -n "$cc" ] || bench_die "no C compiler (cc or gcc): apt-get install gcc"
burrow=$(bench_burrow)
short=$bench_repo/scripts/bench/short-conn.ts

work=$(mktemp -d /tmp/burrow-accelerate-floor.XXXXXX)
chmod 0755 "$work"
"$cc" -O2 -Wall -o "$work/accelerate-floor" "$bench_repo/scripts/bench/accelerate-floor.c"

port=$(free_port 15411)
"${as_user_argv[@]}" "$bench_bun" "$short" serve "$port" &
server=$!
cleanup() {
  as_burrow "$burrow" rm -f bench-floor >/dev/null 2>&1 || true
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
until ss -Htln "sport = :$port" | grep -q .; do sleep 0.05; done

as_burrow "$burrow" rm -f bench-floor >/dev/null 2>&1 || true
as_burrow "$burrow" run -d --name bench-floor --accelerate --network slirp4netns:allow_host_loopback=true -- sleep 3600 >/dev/null

# loop WHO: "MEDIAN MEAN" (ms) of one run of the loop.
loop() {
  local out
  case $1 in
  direct) out=$(as_user "$bench_bun" "$short" connect "$port" "$conns") ;;
  floor) out=$(as_user "$work/accelerate-floor" "$bench_bun" "$short" connect "$port" "$conns" 2>/dev/null) ;;
  burrow) out=$(as_burrow "$burrow" exec bench-floor -- "$bench_bun" "$short" connect "$port" "$conns" 10.0.2.2) ;;
  esac
  "$bench_bun" -e 'const j = JSON.parse(process.argv[1]); console.log(j.medianMs.toFixed(3), j.meanMs.toFixed(3))' "$out"
}

echo "$conns sequential short connections per run, $rounds rounds; burrow=$burrow"
machine_line
interleave_rounds "$rounds" direct floor burrow
