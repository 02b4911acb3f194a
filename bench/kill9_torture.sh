#!/bin/bash
# Long variant of tests/kill9_torture_test: more files and more kill -9 moments.
#
#   sudo bench/kill9_torture.sh [KILLS [SCALE [SEED]]]     (from the repository root)
#
# KILLS (default 200) one-shot runs on a loopback btrfs with a read-only snapshot, each
# given new duplicates and killed with SIGKILL at a random moment; then a run to the end.
# SCALE (default 4) multiplies the number of files. Prints the seed (give it back as
# SEED to replay), how many runs the kill interrupted, and the test's verdict: every
# file byte-identical, the snapshot read-only, every group of copies sharing extents.

set -euo pipefail
kills="${1:-200}"
scale="${2:-4}"
seed="${3:-}"
args=(--test_env=BTRDUPD_TORTURE_KILLS="$kills" --test_env=BTRDUPD_TORTURE_SCALE="$scale")
if [[ -n "$seed" ]]; then args+=(--test_env=BTRDUPD_TORTURE_SEED="$seed"); fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
bazel test --jobs=2 //tests:kill9_torture_test --nocache_test_results --test_output=all \
  --test_timeout=3600 "${args[@]}" >"$log" 2>&1 || status=$?
grep -E 'kill -9 torture|were killed|^\[ +(OK|FAILED) +\]|Failure|seed [0-9]+$' "$log" | sort -u
exit $status
