#!/usr/bin/env bash
# The daemon's per-request peer check (SO_PEERCRED, src/daemon/peers.ts):
# what it costs inside the daemon by fd count (scripts/bench/peer-check.ts),
# and `burrow ps` and `burrow run --rm --network none -- true` end to end,
# hyperfine, before and after, as the test user. Run as root.
#
#   sudo scripts/bench/peer-check.sh BEFORE_BINARY [RUNS]   (RUNS default 50)
#
# BEFORE_BINARY is a burrow built without the check (e.g. main's dist/burrow
# before the peercred branch); the after one is dist/burrow (or
# BENCH_BURROW). Each binary gets its own daemon (the CLI replaces another
# build's daemon, which must not be measured): the bench daemon is ended
# between them. Writes .bench/peer-check-{before,after}-TIME.json.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

before_src=${1:?usage: peer-check.sh BEFORE_BINARY [RUNS]}
runs=${2:-50}
bench_require hyperfine
after=$(bench_burrow)
before=$bench_out/burrow-before
install -m 0755 "$before_src" "$before"
work=$(as_user mktemp -d "$bench_tmp/bench-peer.XXXXXX")
trap 'burrow_cleanup "$after"; burrow_cleanup "$before"; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

echo "peer-check.sh: $(machine_line)"
echo "peer-check.sh: in-process cost of ControlPeers.foreign():"
"$bench_bun" "$bench_repo/scripts/bench/peer-check.ts" 30 100 300 1000

stamp=$(date -u +%Y%m%dT%H%M%SZ)
for which in ${BENCH_ORDER:-before after}; do
  b=${!which}
  burrow_cleanup "$b"
  as_burrow "$b" run --rm --network none -- true >/dev/null
  echo "peer-check.sh: $which: $("$b" --version)"
  as_burrow hyperfine -N -w 5 -r "$runs" --export-json "$work/$which.json" \
    -n "$which: ps" "$b ps" -n "$which: run --rm --network none -- true" "$b run --rm --network none -- true" >/dev/null
  cp "$work/$which.json" "$bench_out/peer-check-$which-$stamp.json"
done
echo "peer-check.sh: medians ($runs runs each)"
json 'j.flatMap((f) => f.results.map((r) => `  ${(r.median * 1000).toFixed(2).padStart(7)} ms  ${r.command}`)).join("\n")' \
  "$bench_out/peer-check-before-$stamp.json" "$bench_out/peer-check-after-$stamp.json"
