#!/usr/bin/env bash
# Runs the whole test suite (unit tests and real-btrfs integration tests) and prints
# the number of individual GoogleTest cases that passed and failed, read from Bazel's
# test XML. Exits non-zero if any case failed, a test target broke, or none ran.
# Needs root: the integration tests mount loopback btrfs images.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run_all.sh: the btrfs integration tests mount loopback images; run as root" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
bazel test //... "$@" 2>&1 | tee "$log"
bazel_rc=${PIPESTATUS[0]}

# Targets Bazel reports as not built or not run this time must not be counted from a
# stale test.xml left by an earlier run.
python3 tests/count_results.py "$(bazel info bazel-testlogs 2>/dev/null)" "$log" \
  $(bazel query 'tests(//...)' 2>/dev/null)
count_rc=$?

if [ $bazel_rc -ne 0 ] && [ $count_rc -eq 0 ]; then
  echo "tests/run_all.sh: bazel test exited $bazel_rc" >&2
  exit $bazel_rc
fi
exit $count_rc
