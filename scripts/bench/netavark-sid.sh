#!/usr/bin/env bash
# netavark networks in the sid tier (podman 5.8, netavark 1.17 with
# nftables, aardvark-dns): burrow against podman, rootless, warm start with a
# published port, alternating runs in one entry of the sid root
# (scripts/sid-root.sh), medians of RUNS each. Run as root.
# A sandbox and a container stay on the two networks throughout (warm: the
# rootless network namespace, podman's, which burrow shares with podman 5,
# is up); BENCH_ALONE=1 leaves them out, so that each run makes and ends the
# namespace (podman's rule when nothing else is on it; burrow's keeper).
# BENCH_OWN_USERNS=1 runs burrow in a user namespace of its own
# (BURROW_PODMAN_USERNS=0): its own rootless namespace and bridges.
# BENCH_ROOTFUL=1 runs both as root instead, in a network namespace made for
# the run (unshare -n in the entry), with podman's storage, burrow's state and
# both tools' network files in the entry's own /run (as the sid tier's rootful
# tests). BENCH_GAP_MS=N sleeps N ms (untimed) before each measured run, so
# that the run before's teardown, which burrow finishes after the command has
# exited (issue 14 allows it), is not in the next run's time.
#
#   sudo scripts/bench/netavark-sid.sh [RUNS]    (30)
#
#      burrow run --rm --network bnv -p 127.0.0.1:P:80 -- true
#      podman run --rm --network pnv -p 127.0.0.1:P2:80 --rootfs /opt/busybox-rootfs true
#
# The root has no hyperfine: each run is timed with date +%s%N around it
# (a fork and exec more than hyperfine -N, the same for both). The entry's
# HOME is a fresh tmpfs directory, so nothing stays in the cached root.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${1:-30}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "netavark-sid.sh: RUNS is a whole number above 0" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "netavark-sid.sh: run as root" >&2; exit 1; }
export BURROW_BIN=${BENCH_BURROW:-$repo/dist/burrow}
"$repo/scripts/sid-root.sh" build >/dev/null

script=$(cat <<'SCRIPT'
set -eu
export HOME="$(mktemp -d)"; cd "$HOME"
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
runs=$1 alone=$2 rootful=$4 gap=$5
[ "$3" != 1 ] || export BURROW_PODMAN_USERNS=0
P=podman
if [ "$rootful" = 1 ]; then
  # Everything in the entry's /run (a tmpfs of its own), in this run's netns.
  export BURROW_NETWORKS_DIR=/run/t/networks BURROW_STATE_DIR=/run/t/burrow-state
  P="podman --root /run/t/storage --runroot /run/t/runroot --network-config-dir /run/t/networks"
  ip link set lo up
fi
burrow network create bnv >/dev/null
$P network create pnv >/dev/null 2>&1
if [ "$alone" != 1 ]; then
  burrow run -d --network bnv --name keep -- sleep 3600 >/dev/null
  $P run -d --network pnv --name keep --rootfs /opt/busybox-rootfs sleep 3600 >/dev/null 2>&1
fi
b() { burrow run --rm --network bnv -p 127.0.0.1:18290:80 -- true; }
p() { $P run --rm --network pnv -p 127.0.0.1:18291:80 --rootfs /opt/busybox-rootfs true 2>/dev/null; }
ms() { local t0 t1; [ "$gap" = 0 ] || sleep "$gap"; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )); }
for w in 1 2 3; do b >/dev/null; p >/dev/null; done
for i in $(seq "$runs"); do echo "b $(ms b)"; echo "p $(ms p)"; done
burrow rm -f keep >/dev/null 2>&1 || true; burrow network rm bnv >/dev/null
$P rm -f -t 0 keep >/dev/null 2>&1 || true; $P network rm pnv >/dev/null 2>&1
SCRIPT
)
gap_ms=${BENCH_GAP_MS:-0}
[[ $gap_ms =~ ^[0-9]+$ ]] || { echo "netavark-sid.sh: BENCH_GAP_MS is a whole number of milliseconds, not \"$gap_ms\"" >&2; exit 1; }
gap=$(awk -v ms="$gap_ms" 'BEGIN { printf "%.3f", ms / 1000 }')
[ "$gap_ms" != 0 ] || gap=0
echo "netavark-sid.sh: $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${BENCH_ROOTFUL:-0}" = 1 ]; then
  # As root in the entry, in a network namespace of the run's own: no bridge or nftables table on the host.
  out=$("$repo/scripts/sid-root.sh" run -- unshare -n sh -c "$script" sh "$runs" "${BENCH_ALONE:-0}" 0 1 "$gap")
else
  out=$("$repo/scripts/sid-root.sh" run --user -- sh -c "$script" sh "$runs" "${BENCH_ALONE:-0}" "${BENCH_OWN_USERNS:-0}" 0 "$gap")
fi
echo "$out" | "$repo/node_modules/.bin/bun" -e '
  const rows = (await Bun.stdin.text()).trim().split("\n").map((l) => l.split(" "));
  const med = (k) => { const v = rows.filter((r) => r[0] === k).map((r) => Number(r[1]) / 1000).sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; };
  const b = med("b"), p = med("p");
  console.log(`netavark-sid.sh: netavark 1.17 -p start${process.env.BENCH_ALONE === "1" ? ", alone" : ""}${process.env.BENCH_OWN_USERNS === "1" ? ", burrow in its own namespace" : ""}${process.env.BENCH_ROOTFUL === "1" ? ", rootful" : ""}${Number(process.env.BENCH_GAP_MS ?? 0) > 0 ? `, ${process.env.BENCH_GAP_MS} ms pause before each` : ""} (median of ${rows.length / 2}), burrow ${b.toFixed(1)} ms / podman 5.8 ${p.toFixed(1)} ms = ${(b / p).toFixed(3)} (1/${(p / b).toFixed(1)})  goal <= 0.200: ${b / p <= 0.2 ? "met" : "MISSED"}`);'
