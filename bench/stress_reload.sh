#!/usr/bin/env bash
# Runs the reload tests (tests/it/reload.rs) N times in a row while every core is kept
# busy, and prints how many runs passed. For flakes that only show on a loaded machine
# (CI has 2 cores and runs tests in parallel).
#
#   bench/stress_reload.sh            # 20 runs
#   bench/stress_reload.sh 50         # 50 runs
#   STRESS_FILTER=reload::a_reload_whose bench/stress_reload.sh 10   # only matching tests
#
# Builds first (unloaded), then starts one CPU hog per core (stress-ng --cpu if
# installed, else `yes > /dev/null` loops), killed on exit whatever happens. Each run
# is `cargo nextest run --test it <filter> --retries 0` (filter: a substring of the
# test names, default reload::; a filter that matches nothing fails) with a 15 min limit;
# a failed run's output is kept in $CARGO_TARGET_DIR/stress_reload/run-<i>.log
# (default target/). Exits non-zero if any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-20}
filter=${STRESS_FILTER:-reload::}
target=${CARGO_TARGET_DIR:-target}
logs="$target/stress_reload"
cores=$(nproc)

cargo nextest run --test it --locked --no-run

hogs=()
cleanup() {
  for pid in "${hogs[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if command -v stress-ng >/dev/null 2>&1; then
  stress-ng --cpu "$cores" --quiet &
  hogs+=("$!")
else
  for _ in $(seq "$cores"); do
    yes >/dev/null &
    hogs+=("$!")
  done
fi

mkdir -p "$logs"
rm -f "$logs"/run-*.log
pass=0
fail=0
for i in $(seq "$runs"); do
  log="$logs/run-$i.log"
  if timeout 900 cargo nextest run --test it --locked --retries 0 --no-fail-fast \
    "$filter" >"$log" 2>&1; then
    pass=$((pass + 1))
    rm -f "$log"
    echo "run $i/$runs: pass"
  else
    fail=$((fail + 1))
    echo "run $i/$runs: FAIL ($log)"
    grep -E '^\s+(FAIL|TIMEOUT|SIGSEGV|SIGABRT) ' "$log" | sort -u || true
  fi
done
echo "stress_reload: $pass passed, $fail failed of $runs runs ($cores cores loaded, filter $filter)"
[ "$fail" -eq 0 ]
