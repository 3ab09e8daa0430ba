#!/usr/bin/env bash
# How long published ports are down after `kill -9` of the daemon (issue 10
# item 5; goal: under 1 s, with no user action). Run as root; burrow runs as
# the test user with the bench dirs (lib.sh).
#
#   sudo scripts/bench/daemon-kill.sh [ROUNDS]     ROUNDS kills (20)
#
# One sandbox serves a file with busybox httpd, published on 127.0.0.1:PORT
# (builtin forwarder, slirp4netns). daemon-kill-probe.ts then, ROUNDS times:
# SIGKILLs the daemon, GETs http://127.0.0.1:PORT/ in a loop until the
# answer is right again, and records the time from the kill to that answer
# and the failed requests; no burrow command runs meanwhile (the holder's
# supervisor restarts the daemon, whose reconcile reopens the port).
# Prints median/min/max and writes .bench/daemon-kill-TIME.json. The
# sandbox, the bench daemon and holder are removed on exit, also on failure.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=${1:-20}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || bench_die "ROUNDS is a whole number above 0"
[ "$(id -u)" = 0 ] || bench_die "run as root: it runs burrow as $bench_user with setpriv"
command -v busybox >/dev/null || bench_die "busybox is not installed: apt-get install busybox-static"
mkdir -p "$bench_out"
b=$(bench_burrow)
[ -z "$(bench_daemons)" ] || bench_die "a bench daemon is already running (another bench script?): wait for it to end"
www=$bench_tmp/bench-daemon-kill-www
trap 'burrow_cleanup "$b"; rm -rf "$www"' EXIT
as_user mkdir -p "$www"
as_user sh -c "echo bench > $www/index.html"
port=$(free_port 18470)
as_burrow "$b" run -d --name bench-kill -p "127.0.0.1:$port:80" -- busybox httpd -f -p 80 -h "$www" >/dev/null
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done

out=$bench_out/daemon-kill-$(date -u +%Y%m%dT%H%M%SZ).json
echo "$(machine_line)"
echo "burrow $("$b" --version) ($(git -C "$bench_repo" rev-parse --short=12 HEAD)), $rounds kills of the daemon, port $port"
"$bench_bun" "$bench_repo/scripts/bench/daemon-kill-probe.ts" "$port" "$bench_runtime" "$rounds" "bench
" >"$out"
json '`ports down after kill -9: median ${j[0].medianMs.toFixed(0)} ms, min ${j[0].minMs.toFixed(0)} ms, max ${j[0].maxMs.toFixed(0)} ms; ${j[0].failedTotal} failed requests in ${j[0].rounds} kills`' "$out"
echo "results: $out"
