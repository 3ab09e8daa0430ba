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
runs=$1 alone=$2
[ "$3" != 1 ] || export BURROW_PODMAN_USERNS=0
burrow network create bnv >/dev/null
podman network create pnv >/dev/null 2>&1
if [ "$alone" != 1 ]; then
  burrow run -d --network bnv --name keep -- sleep 3600 >/dev/null
  podman run -d --network pnv --name keep --rootfs /opt/busybox-rootfs sleep 3600 >/dev/null 2>&1
fi
b() { burrow run --rm --network bnv -p 127.0.0.1:18290:80 -- true; }
p() { podman run --rm --network pnv -p 127.0.0.1:18291:80 --rootfs /opt/busybox-rootfs true 2>/dev/null; }
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )); }
for w in 1 2 3; do b >/dev/null; p >/dev/null; done
for i in $(seq "$runs"); do echo "b $(ms b)"; echo "p $(ms p)"; done
burrow rm -f keep >/dev/null 2>&1 || true; burrow network rm bnv >/dev/null
podman rm -f -t 0 keep >/dev/null 2>&1 || true; podman network rm pnv >/dev/null 2>&1
SCRIPT
)
echo "netavark-sid.sh: $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
out=$("$repo/scripts/sid-root.sh" run --user -- sh -c "$script" sh "$runs" "${BENCH_ALONE:-0}" "${BENCH_OWN_USERNS:-0}")
echo "$out" | "$repo/node_modules/.bin/bun" -e '
  const rows = (await Bun.stdin.text()).trim().split("\n").map((l) => l.split(" "));
  const med = (k) => { const v = rows.filter((r) => r[0] === k).map((r) => Number(r[1]) / 1000).sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; };
  const b = med("b"), p = med("p");
  console.log(`netavark-sid.sh: netavark 1.17 -p start${process.env.BENCH_ALONE === "1" ? ", alone" : ""}${process.env.BENCH_OWN_USERNS === "1" ? ", burrow in its own namespace" : ""} (median of ${rows.length / 2}), burrow ${b.toFixed(1)} ms / podman 5.8 ${p.toFixed(1)} ms = ${(b / p).toFixed(3)} (1/${(p / b).toFixed(1)})  goal <= 0.200: ${b / p <= 0.2 ? "met" : "MISSED"}`);'
