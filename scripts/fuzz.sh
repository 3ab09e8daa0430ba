#!/usr/bin/env bash
# The long fuzzing run (not in npm test, which runs a bounded number of
# cases): the property tests of every user-input parser with many more
# cases, then the control-socket fuzzer against the real daemon for longer.
#
#   scripts/fuzz.sh [RUNS] [FUZZ_MS]      # defaults: 50000 cases, 120000 ms
#   BURROW_PROPERTY_SEED=N / BURROW_FUZZ_SEED=N replay a failure's seed.
#
# Runs as root like scripts/test.sh (the socket fuzzer drives the built
# binary as the test user); run scripts/setup.sh first.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bun=node_modules/.bin/bun
export BURROW_PROPERTY_RUNS=${1:-50000}
export BURROW_FUZZ_MS=${2:-120000}
export BURROW_BIN=${BURROW_BIN:-${BURROW_TEST_BIN:-/usr/local/lib/burrow-test/burrow}}
export BURROW_TEST_RUN=${BURROW_TEST_RUN:-fuzz-$(date +%s)-$$}
echo "fuzz: $BURROW_PROPERTY_RUNS cases per property, socket fuzzer for $BURROW_FUZZ_MS ms, binary $BURROW_BIN"
"$bun" test ./test/unit/properties.test.ts ./test/unit/properties-cli.test.ts --timeout $((BURROW_PROPERTY_RUNS / 5 + 60000))
"$bun" test ./test/integration/requests.test.ts -t fuzzer --timeout $((BURROW_FUZZ_MS + 120000))
