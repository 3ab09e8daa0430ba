#!/usr/bin/env bash
# Every benchmark of docs/benchmarks.md, in order, as root:
#
#   sudo scripts/bench/run-all.sh
#
# 1. setup-peers.sh (podman, runc, rootlesskit, the busybox rootfs; quiet
#    when all is in place), 2. a fresh dist/burrow (bun run build) and one
#    snapshot of it that every script measures (others may rebuild dist/ while
#    this runs), 3. start.sh, throughput.sh, memory.sh, bridge.sh,
#    bridge-start.sh (rootless and rootful, podman on netavark). The whole
#    output also goes to .bench/run-all-TIME.log. Each script removes what it
#    made.
# Arguments are not taken; the scripts' own (runs, seconds, counts) can be
# set with BENCH_START_RUNS (start.sh, bridge.sh, bridge-start.sh), BENCH_SECONDS
# (throughput.sh and bridge.sh), BENCH_SANDBOXES, BENCH_CONTAINERS.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
[ "$(id -u)" = 0 ] || bench_die "run as root"
mkdir -p "$bench_out"
log=$bench_out/run-all-$(date -u +%Y%m%dT%H%M%SZ).log
exec > >(tee "$log") 2>&1

step() { printf '\n==== %s\n' "$*"; }

step "setup-peers.sh"
BENCH_QUIET=1 bash "$here/setup-peers.sh"

step "build"
(cd "$bench_repo" && node_modules/.bin/bun run build)
snapshot=$bench_out/burrow-run-all
trap 'rm -f "$snapshot"' EXIT # 110 MB; the scripts have ended their daemons by then
install -m 0755 "$bench_repo/dist/burrow" "$snapshot.new.$$"
mv -f "$snapshot.new.$$" "$snapshot"
export BENCH_BURROW=$snapshot
(cd "$bench_repo" && printf 'source: git %s%s\n' "$(git rev-parse --short=12 HEAD)" \
  "$([ -z "$(git status --porcelain -- src package.json bunfig.toml scripts/build.ts)" ] || echo ' + uncommitted changes under src/')")

step "start.sh"
bash "$here/start.sh" "${BENCH_START_RUNS:-30}"

step "throughput.sh"
bash "$here/throughput.sh" "${BENCH_SECONDS:-10}"

step "memory.sh"
bash "$here/memory.sh" "${BENCH_SANDBOXES:-50}" "${BENCH_CONTAINERS:-5}"

step "bridge.sh"
bash "$here/bridge.sh" "${BENCH_START_RUNS:-30}" "${BENCH_SECONDS:-10}"

step "bridge-start.sh"
bash "$here/bridge-start.sh" "${BENCH_START_RUNS:-30}" both

step "done: log in ${log#"$bench_repo"/}"
