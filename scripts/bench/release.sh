#!/usr/bin/env bash
# Numbers for docs/benchmarks.md "Release": the time of `bun run release`,
# the size of every release file, and `burrow --version` start of the
# released x64 binary next to dist/burrow (hyperfine, median).
#
#   scripts/bench/release.sh            # builds dist/release and dist/burrow first
#   BENCH_RELEASE_REUSE=1 scripts/bench/release.sh   # measure what is there
#
# Needs hyperfine (scripts/setup.sh installs it). Writes only dist/ and .bench/.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
bun=node_modules/.bin/bun
mkdir -p .bench
version=$(node -p 'require("./package.json").version')

if [ -z "${BENCH_RELEASE_REUSE:-}" ] || [ ! -e dist/release/SHA256SUMS ]; then
  echo "== bun run release (nproc=$(nproc), load $(cut -d' ' -f1-3 /proc/loadavg))"
  start=$(date +%s.%N)
  "$bun" run --silent release </dev/null
  end=$(date +%s.%N)
  printf 'bun run release: %.1f s wall\n' "$(echo "$end - $start" | bc)"
  "$bun" run --silent build </dev/null
fi

echo "== sizes (bytes, MiB)"
for f in dist/release/*; do
  printf '%-40s %12d  %6.1f\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(echo "$(stat -c %s "$f") / 1048576" | bc -l)"
done

echo "== burrow --version start (hyperfine, 50 runs after 5 warm-up)"
hyperfine -N --warmup 5 --runs 50 --export-json .bench/release-version.json \
  -n "dist/release/burrow-linux-x64" "dist/release/burrow-linux-x64 --version" \
  -n "dist/burrow" "dist/burrow --version"
node -e '
const r = require("./.bench/release-version.json").results;
for (const x of r) console.log(`${x.command}: median ${(x.median * 1000).toFixed(1)} ms (min ${(x.min * 1000).toFixed(1)}, max ${(x.max * 1000).toFixed(1)})`);
'
echo "version $version, commit $(git rev-parse --short=12 HEAD)"
