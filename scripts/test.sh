#!/usr/bin/env bash
# The one test command (`npm test`, also what .ci/run calls).
#
#   scripts/test.sh [unit|integration|release] [bun test options...]
#   npm test -- --timeout 120000        # options go to every bun test run
#
# Runs scripts/setup.sh, the typecheck, Biome's format and lint check, the
# unit tests, then the integration tests (real
# namespaces, run as root driving dist/burrow as the test user or inside a
# test netns), then a suite-level check that nothing leaked. Ends with one
# line: "N passed, N failed[, N skipped]". Exits non-zero on any failure.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# release: `bun run release` once, then the install routes (test/release).
tiers=(unit integration release)
case "${1:-}" in unit | integration | release) tiers=("$1"); shift ;; esac

# The copy of dist/burrow that setup installed for the test user (see
# test/helpers/env.ts). An explicit BURROW_BIN wins.
export BURROW_BIN=${BURROW_BIN:-${BURROW_TEST_BIN:-/usr/local/lib/burrow-test/burrow}}
# Tags every command the helpers start, so leak checks tell this run's
# processes from someone else's on a shared machine.
export BURROW_TEST_RUN=${BURROW_TEST_RUN:-run-$(date +%s)-$$}
bun=node_modules/.bin/bun

passed=0 failed=0 skipped=0
notes=()

setup_ok=1
bash scripts/setup.sh || { setup_ok=0; notes+=("scripts/setup.sh failed (see above): integration tests not run"); }
if [ ! -x "$bun" ]; then
  echo "test.sh: $bun is missing: nothing can run" >&2
  echo "0 passed, 0 failed, setup failed"
  exit 1
fi

has_tests() {
  [ -n "$(find "$1" -type f \( -name '*.test.*' -o -name '*_test_*' -o -name '*.spec.*' -o -name '*_spec_*' \) -print -quit 2>/dev/null)" ]
}

# run_tier NAME [bun test options...]: runs bun test on test/NAME and adds
# bun's own summary lines (" 3 pass", " 1 fail", ...) to the totals.
run_tier() {
  local tier=$1 dir=test/$1
  shift
  if ! has_tests "$dir"; then
    notes+=("no $tier tests ran: $dir has no *.test.ts files")
    return
  fi
  printf '\n== %s tests: bun test ./%s %s\n' "$tier" "$dir" "$*"
  local log rc
  log=$(mktemp)
  # bunfig.toml's [test] timeout is not read by this bun (measured: 5 s
  # applied): the per-test bound is given here; a later --timeout wins.
  "$bun" test "./$dir" --timeout 60000 "$@" </dev/null 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local counts
  counts=$(awk '
    /^ *[0-9]+ (pass|fail|skip|todo|error|errors)$/ { n[$2] += $1; seen = 1 }
    END { if (seen) printf "%d %d %d %d", n["pass"], n["fail"] + n["error"] + n["errors"], n["skip"] + n["todo"], 1; else print "0 0 0 0" }' "$log")
  rm -f "$log"
  local p f s seen
  read -r p f s seen <<<"$counts"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    # bun failed without counting a failed test: a crash, a load error or a
    # file that matched nothing. Count it so the summary cannot read clean.
    failed=$((failed + 1))
    notes+=("bun test ./$dir exited $rc without a failed test in its summary$([ "$seen" = 0 ] && echo ' (no summary at all)')")
  fi
}

# The types are part of the tests: a type error counts as one failure.
if [ "${tiers[0]}" = unit ]; then
  printf '\n== typecheck: tsc --noEmit\n'
  if node_modules/.bin/tsc --noEmit -p .; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    notes+=("tsc --noEmit found type errors (listed above)")
  fi
fi

# So is the style: Biome's formatter and linter (biome.json; npm run format
# fixes the formatting). One failure, like the typecheck.
if [ "${tiers[0]}" = unit ]; then
  printf '\n== format and lint: biome check\n'
  if node_modules/.bin/biome check --error-on-warnings --max-diagnostics=20 .; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    notes+=("biome check found unformatted or lint-failing code (listed above; npm run format fixes the formatting)")
  fi
fi

for tier in "${tiers[@]}"; do
  [ "$tier" != unit ] && [ $setup_ok = 0 ] && continue
  if [ "$tier" = integration ] && has_tests test/integration; then
    # Suite-level leak check around the whole integration run: processes,
    # mounts, host links, host firewall rules (test/helpers/leaks.ts).
    suite_snap=$(mktemp)
    "$bun" test/helpers/suite-check.ts snapshot "$suite_snap"
    run_tier "$tier" "$@"
    if ! "$bun" test/helpers/suite-check.ts check "$suite_snap"; then
      failed=$((failed + 1))
      notes+=("the integration suite leaked (listed above by test/helpers/suite-check.ts)")
    fi
    rm -f "$suite_snap"
  else
    run_tier "$tier" "$@"
  fi
done

echo
for n in "${notes[@]}"; do echo "note: $n"; done
summary="$passed passed, $failed failed"
[ $skipped -gt 0 ] && summary+=", $skipped skipped"
[ $setup_ok = 1 ] || summary+=", setup failed"
echo "$summary"
[ $failed = 0 ] && [ $setup_ok = 1 ]
