#!/usr/bin/env bash
# How long published ports are down after `kill -9` of the daemon (issue 10
# item 5; goal: under 1 s, with no user action). Run as root.
#
#   sudo scripts/bench/daemon-kill.sh [ROUNDS] [--mode rootless|rootful]   ROUNDS kills (20)
#
# One sandbox serves a file with busybox httpd, published on 127.0.0.1:PORT
# (builtin forwarder, slirp4netns). daemon-kill-probe.ts then, ROUNDS times:
# SIGKILLs the daemon, GETs http://127.0.0.1:PORT/ in a loop until the
# answer is right again, and records the time from the kill to that answer
# and the failed requests; no burrow command runs meanwhile (the
# supervisor restarts the daemon, whose reconcile reopens the port).
# Prints median/min/max and writes .bench/daemon-kill[-rootful]-TIME.json.
#
# rootless (default): burrow runs as the test user with the bench dirs
# (lib.sh); the holder is the supervisor. rootful: burrow runs as root with
# its own dirs under /run/burrow-bench-kill, inside a netns this script makes
# (lo only; the machine's network is never touched), where the probe runs
# too; the supervisor is `burrow-supervisor`. Everything made is removed on
# exit, also on failure.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=20 mode=rootless
while [ $# -gt 0 ]; do
  case $1 in
    --mode) mode=${2:-}; shift 2 ;;
    --mode=*) mode=${1#--mode=}; shift ;;
    *) rounds=$1; shift ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || bench_die "ROUNDS is a whole number above 0"
case $mode in rootless | rootful) ;; *) bench_die "--mode is rootless or rootful, not \"$mode\"" ;; esac
[ "$(id -u)" = 0 ] || bench_die "run as root: it runs burrow as $bench_user with setpriv, or rootful in its own netns"
command -v busybox >/dev/null || bench_die "busybox is not installed: apt-get install busybox-static"
mkdir -p "$bench_out"
b=$(bench_burrow)

if [ "$mode" = rootless ]; then
  [ -z "$(bench_daemons)" ] || bench_die "a bench daemon is already running (another bench script?): wait for it to end"
  www=$bench_tmp/bench-daemon-kill-www
  trap 'burrow_cleanup "$b"; rm -rf "$www"' EXIT
  as_user mkdir -p "$www"
  as_user sh -c "echo bench > $www/index.html"
  probe_runtime=$bench_runtime
  in_place=()
  run_burrow() { as_burrow "$b" "$@"; }
  port=$(free_port 18470)
else
  root=/run/burrow-bench-kill
  ns=burrow-bench-kill-$$
  [ ! -e "$root" ] || bench_die "$root exists (another run of this script?): remove it when none runs"
  probe_runtime=$root/run
  www=$root/www
  in_place=(nsenter "--net=/run/netns/$ns" --)
  rootful_env=(env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
    BURROW_RUNTIME_DIR="$root/run" BURROW_STATE_DIR="$root/state" BURROW_CNI_CONFIG_DIR="$root/cni" BURROW_IDLE_TIMEOUT=60)
  run_burrow() { "${rootful_env[@]}" "${in_place[@]}" "$b" "$@"; }
  rootful_cleanup() {
    local ids pid
    if [ -S "$root/run/control.sock" ]; then
      ids=$(run_burrow ps -a -q 2>/dev/null || true)
      # shellcheck disable=SC2086
      [ -z "$ids" ] || run_burrow rm -f $ids >/dev/null 2>&1 || true
    fi
    # SIGTERM to the supervisor is a clean stop of its daemon too; then whatever runs in the netns.
    pid=$(sed -n 's/^{"pid":\([0-9]*\).*/\1/p' "$root/run/supervisor.json" 2>/dev/null || true)
    [ -n "$pid" ] && [[ $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) == "burrow-supervisor "* ]] && kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      echo "$(basename "$0"): killing leftover $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)(pid $pid)" >&2
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns delete "$ns" 2>/dev/null || true
    # Rootful pins are bind mounts under the runtime dir: deepest first.
    awk -v r="$root/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$root"
  }
  trap rootful_cleanup EXIT
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  mkdir -m 700 -p "$root" "$root/run" "$root/state" "$root/cni" "$www"
  echo bench >"$www/index.html"
  port=18470
fi
run_burrow run -d --name bench-kill --network slirp4netns -p "127.0.0.1:$port:80" -- busybox httpd -f -p 80 -h "$www" >/dev/null
for _ in $(seq 100); do "${in_place[@]}" curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done

out=$bench_out/daemon-kill$([ "$mode" = rootful ] && echo -rootful)-$(date -u +%Y%m%dT%H%M%SZ).json
echo "$(machine_line)"
echo "burrow $("$b" --version) ($(git -C "$bench_repo" rev-parse --short=12 HEAD)), $mode, $rounds kills of the daemon, port $port"
"${in_place[@]}" "$bench_bun" "$bench_repo/scripts/bench/daemon-kill-probe.ts" "$port" "$probe_runtime" "$rounds" "bench
" >"$out"
json '`ports down after kill -9: median ${j[0].medianMs.toFixed(0)} ms, min ${j[0].minMs.toFixed(0)} ms, max ${j[0].maxMs.toFixed(0)} ms; ${j[0].failedTotal} failed requests in ${j[0].rounds} kills`' "$out"
echo "results: $out"
