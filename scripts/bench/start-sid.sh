#!/usr/bin/env bash
# Start-up in the sid tier (podman 5.8, docs/testing.md "The sid tier"):
# `burrow run --rm --network none -- true` against podman's, and
# `run --rm -p 127.0.0.1:P:80 -- true` with each one's default rootless
# network (burrow: slirp4netns and its forwarder; podman 5.8: pasta),
# alternately, N runs each, medians. The sid root has no hyperfine: each run is timed
# with date +%s%N in one bash inside the root, as the test user, burrow with
# private dirs (removed, and its daemon ended, at the end). Run as root.
#
#   sudo scripts/bench/start-sid.sh [RUNS]      (default 20; BURROW_BIN: the binary, default dist/burrow)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${1:-20}
# shellcheck disable=SC2016 # expanded inside the sid root
inner='
N=$1
export BURROW_RUNTIME_DIR=/run/user/$(id -u)/burrow-bench-sid BURROW_STATE_DIR=$HOME/.local/share/burrow-bench-sid BURROW_IDLE_TIMEOUT=120
med() { printf "%s\n" "$@" | sort -n | awk "{a[NR]=\$1} END {print a[int((NR+1)/2)]/1000}"; }
echo "start-sid.sh: $(burrow --version); $(podman --version); $N runs each"
# label|burrow command|podman command|goal
pairs=(
  "--network none|burrow run --rm --network none -- true|podman run --rm --network none --rootfs /opt/busybox-rootfs true|0.100"
  "-p (default network)|burrow run --rm -p 127.0.0.1:18480:80 -- true|podman run --rm -p 127.0.0.1:18481:80 --rootfs /opt/busybox-rootfs true|0.125"
)
for pair in "${pairs[@]}"; do
  IFS="|" read -r label B P goal <<<"$pair"
  for c in "$B" "$P"; do $c >/dev/null 2>&1 || { echo "failed: $c" >&2; $c; exit 1; }; done
  bs=(); ps=()
  for i in $(seq "$N"); do
    t0=$(date +%s%N); $B >/dev/null 2>&1; t1=$(date +%s%N); $P >/dev/null 2>&1; t2=$(date +%s%N)
    bs+=($(( (t1 - t0) / 1000 ))); ps+=($(( (t2 - t1) / 1000 )))
  done
  b=$(med "${bs[@]}"); p=$(med "${ps[@]}")
  echo "start-sid.sh: $label: burrow $b ms, podman $p ms, ratio $(awk "BEGIN {printf \"%.3f\", $b / $p}") (goal <= $goal)"
done
pid=$(sed -n "s/.*\"pid\":\([0-9]*\).*/\1/p" "$BURROW_RUNTIME_DIR/daemon.version" 2>/dev/null || true)
[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
'
exec bash "$repo/scripts/sid-root.sh" run --user -- bash -c "$inner" start-sid "$runs"
