#!/usr/bin/env bash
# Start-up of two burrow builds side by side, in one hyperfine run: what a
# change costs on the start path (e.g. main's build against a branch's).
#
#   sudo scripts/bench/ab-start.sh BURROW_A BURROW_B [RUNS]     (default 40)
#
# Each build gets its own runtime and state dir (two builds of one version
# would otherwise replace each other's daemon), both warm. Commands:
# `run --rm --network none -- true` and `run --rm -p PORT:80 -- true`
# (slirp4netns, builtin forwarder), A and B alternately (hyperfine would run
# each in one block, and the machine's load drifts between blocks). Prints
# the medians and the median of the paired differences B - A, of the wall
# and the CPU time. AB_GAP_MS=100 pauses before each command, so that what a
# daemon does after its reply does not land in the other side's run.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 2 ] || bench_die "usage: ab-start.sh BURROW_A BURROW_B [RUNS]"
runs=${3:-40}
[ "$(id -u)" = 0 ] || bench_die "run as root: it runs the measured commands as $bench_user with setpriv"
mkdir -p "$bench_out"
work=$(as_user mktemp -d "$bench_tmp/bench-ab.XXXXXX")
# Copies the test user can execute, whatever directory the builds are in.
install -m 0755 "$1" "$work/burrow-a"
install -m 0755 "$2" "$work/burrow-b"
port=$(free_port 18090)

base_runtime=$bench_runtime base_state=$bench_state
dirs() { echo "env BURROW_RUNTIME_DIR=$base_runtime-$1 BURROW_STATE_DIR=$base_state-$1 BURROW_IDLE_TIMEOUT=60"; }
# burrow_cleanup (lib.sh) for one side: its dirs, and the argv that carries them.
cleanup_side() {
  bench_runtime=$base_runtime-$1 bench_state=$base_state-$1
  burrow_env=(BURROW_RUNTIME_DIR="$bench_runtime" BURROW_STATE_DIR="$bench_state" BURROW_IDLE_TIMEOUT=60)
  as_burrow_argv=(env -i -C "$bench_home" "${bench_env[@]}" "${burrow_env[@]}" "${setpriv_argv[@]}")
  burrow_cleanup "$work/burrow-$1" || true
}
cleanup() {
  cleanup_side a
  cleanup_side b
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "ab-start.sh: $(machine_line)"
echo "ab-start.sh: A = $("$work/burrow-a" --version); B = $("$work/burrow-b" --version)"
echo "ab-start.sh: medians, A and B run alternately (scripts/bench/ab-interleave.ts)"
for mode in none publish; do
  case $mode in
    none) what="--network none" rest=(run --rm --network none -- true) ;;
    publish) what="-p PORT:80 (slirp4netns)" rest=(run --rm -p "$port:80" -- true) ;;
  esac
  # shellcheck disable=SC2046 # dirs prints plain words
  "$bench_bun" "$bench_repo/scripts/bench/ab-interleave.ts" "$runs" 5 "$what" \
    @@ "${as_user_argv[@]}" $(dirs a) "$work/burrow-a" "${rest[@]}" \
    @@ "${as_user_argv[@]}" $(dirs b) "$work/burrow-b" "${rest[@]}"
done
