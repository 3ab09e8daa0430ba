#!/usr/bin/env bash
# The sid tier's run of scripts/bench/pasta.sh (issue 15 item 2): burrow
# with slirp4netns 1.3 + builtin forwarder against pasta 2026, inside the
# Debian sid root of scripts/sid-root.sh, as the test user there. Run as root:
#
#   sudo scripts/bench/pasta-sid.sh [SECONDS] [N]     defaults 5 and 5
#
# Rows as in pasta.sh: start (median of 15 `burrow run --rm --network M -p
# P:80 -- true`, timed with date, so it includes the CLI's start), inbound,
# reverse and outbound iperf3 (sid's iperf3), 500 short connections
# (short-conn.ts run by the burrow binary itself as bun: BUN_BE_BUN=1), and
# the network helper's RSS per sandbox over N sandboxes. Prints one line per
# backend; everything runs inside one `sid-root.sh run`, which leaves nothing.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
secs=${1:-5}
n=${2:-5}
{
  echo 'export HOME="$(mktemp -d)" && cd "$HOME"'
  echo "secs=$secs n=$n"
  echo "cat > short-conn.ts <<'SHORT_CONN_EOF'"
  cat "$repo/scripts/bench/short-conn.ts"
  echo "SHORT_CONN_EOF"
  cat <<'INNER'
set -e
bun() { BUN_BE_BUN=1 "$(command -v burrow)" "$@"; }
rss() {
  s=0
  for p in $(pgrep -u "$(id -u)"); do
    case $(cat /proc/$p/comm 2>/dev/null) in
      slirp4netns | pasta* | passt*) v=$(awk '/^VmRSS/ { print $2 }' /proc/$p/status 2>/dev/null); s=$((s + ${v:-0})) ;;
    esac
  done
  echo $s
}
gbits() { sed -n '/"sum_received"/,/}/ s/.*"bits_per_second":[[:space:]]*\([0-9.e+]*\).*/\1/p' "$1" | awk 'NR == 1 { printf "%.2f", $1 / 1e9 }'; }
wait_iperf() { i=0; until iperf3 -c 127.0.0.1 -p "$1" -n 1 >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done; }
burrow run --rm -- true
iperf3 -s -B 127.0.0.1 -p 15401 >/dev/null 2>&1 & srv=$!
wait_iperf 15401
gw=$(ip -4 route show default | awk '{ print $3; exit }')
for m in slirp4netns pasta; do
  ts=""
  for i in $(seq 15); do a=$(date +%s%N); burrow run --rm --network $m -p 127.0.0.1:$((19400 + i)):80 -- true; b=$(date +%s%N); ts="$ts $(((b - a) / 100000))"; done
  start=$(echo $ts | tr ' ' '\n' | sort -n | sed -n 8p)
  burrow run -d --name "ip-$m" --network $m -p 127.0.0.1:15411:5201 -- iperf3 -s >/dev/null
  wait_iperf 15411
  iperf3 -c 127.0.0.1 -p 15411 -t "$secs" -J >in.json
  iperf3 -c 127.0.0.1 -p 15411 -t "$secs" -R -J >rev.json
  burrow rm -f "ip-$m" >/dev/null
  if [ $m = pasta ]; then net=pasta:--map-gw target=$gw; else net=slirp4netns:allow_host_loopback=true target=10.0.2.2; fi
  burrow run --rm --network $net -- iperf3 -c $target -p 15401 -t "$secs" -J >out.json
  burrow run -d --name "sc-$m" --network $m -p 127.0.0.1:15421:7000 -- env BUN_BE_BUN=1 "$(command -v burrow)" "$HOME/short-conn.ts" serve 7000 >/dev/null
  i=0; until bun short-conn.ts connect 15421 1 >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done
  short=$(bun short-conn.ts connect 15421 500)
  burrow rm -f "sc-$m" >/dev/null
  ids=""
  for i in $(seq "$n"); do ids="$ids $(burrow run -d --network $m -p 127.0.0.1:$((19500 + i)):80 -- sleep 600)"; done
  sleep 2
  mem=$(($(rss) / n))
  burrow rm -f $ids >/dev/null
  echo "$m: start $((start / 10)).$((start % 10)) ms, inbound $(gbits in.json) Gbit/s, reverse $(gbits rev.json), outbound $(gbits out.json), short connections $(echo "$short" | sed 's/.*"medianMs":\([0-9.]*\).*"p95Ms":\([0-9.]*\).*/median \1 ms, p95 \2 ms/'), helper RSS $mem KiB per sandbox"
done
kill $srv; wait $srv 2>/dev/null || true
INNER
} | bash "$repo/scripts/sid-root.sh" run --user -- sh -s
