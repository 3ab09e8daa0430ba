#!/usr/bin/env bash
# Start-up of two burrow builds side by side, in one hyperfine run: what a
# change costs on the start path (e.g. main's build against a branch's).
#
#   sudo scripts/bench/ab-start.sh BURROW_A BURROW_B [RUNS]     (default 40)
#
# Each build gets its own runtime and state dir (two builds of one version
# would otherwise replace each other's daemon), both warm. Commands:
# `run --rm --network none -- true` and `run --rm -p PORT:80 -- true`
# (slirp4netns, builtin forwarder) for A and B, interleaved by hyperfine.
# Prints the medians and B - A.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 2 ] || bench_die "usage: ab-start.sh BURROW_A BURROW_B [RUNS]"
runs=${3:-40}
[ "$(id -u)" = 0 ] || bench_die "run as root: it runs the measured commands as $bench_user with setpriv"
command -v hyperfine >/dev/null || bench_die "hyperfine is not installed"
mkdir -p "$bench_out"
work=$(as_user mktemp -d "$bench_tmp/bench-ab.XXXXXX")
# Copies the test user can execute, whatever directory the builds are in.
install -m 0755 "$1" "$work/burrow-a"
install -m 0755 "$2" "$work/burrow-b"
port=$(free_port 18090)

dirs() { echo "env BURROW_RUNTIME_DIR=$bench_runtime-$1 BURROW_STATE_DIR=$bench_state-$1 BURROW_IDLE_TIMEOUT=60"; }
cleanup() {
  local side
  for side in a b; do
    bench_runtime=$bench_runtime-$side bench_state=$bench_state-$side burrow_cleanup "$work/burrow-$side" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cmds=()
for side in a b; do
  cmds+=("$(dirs $side) $work/burrow-$side run --rm --network none -- true")
done
for side in a b; do
  cmds+=("$(dirs $side) $work/burrow-$side run --rm -p $port:80 -- true")
done
echo "ab-start.sh: $(machine_line)"
echo "ab-start.sh: A = $("$work/burrow-a" --version); B = $("$work/burrow-b" --version)"
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086 # plain words, as hyperfine -N splits them
  as_user $c || as_user $c || bench_die "failed twice: $c"
done
as_user hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/ab.json" "${cmds[@]}" >/dev/null
cp "$work/ab.json" "$bench_out/ab-start-latest.json"
json '(() => {
  const m = j[0].results.map((r) => r.median * 1000);
  const row = (what, a, b) => `  ${what.padEnd(28)} A ${a.toFixed(2)} ms   B ${b.toFixed(2)} ms   B - A ${(b - a >= 0 ? "+" : "")}${(b - a).toFixed(2)} ms`;
  return ["ab-start.sh: medians (" + j[0].results[0].times.length + " runs each)", row("--network none", m[0], m[1]), row("-p PORT:80 (slirp4netns)", m[2], m[3])].join("\n");
})()' "$work/ab.json"
