#!/bin/bash
# Runs the duperemove backend's checks against a duperemove binary you name, on fresh
# loopback btrfs filesystems: the reference keeps its extents whatever the release's
# order, destinations share them, a changed file is "differs", more than 120 files and
# snapshot copies with one inode number are split into invocations the release accepts.
# CI runs the same checks against Debian's duperemove and a stub; this is how a
# release you built yourself (e.g. 0.15.2 from its public source tarball) is exercised.
#
#   sudo bench/duperemove_versions.sh /path/to/duperemove     (from the repository root)
#
# Prints the release, then one line per check (OK or FAILED) and a total. Needs root,
# bazel, mkfs.btrfs and btrfs-progs. Leaves nothing behind.

set -euo pipefail

binary="${1:?usage: $0 /path/to/duperemove}"
binary="$(realpath "$binary")"
if [[ ! -x "$binary" ]]; then
  echo "$binary is not an executable file" >&2
  exit 2
fi
echo "binary: $binary"
echo "release: $("$binary" --version 2>&1 | head -1)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
bazel test --jobs=2 //tests:duperemove_backend_test \
  --test_env=BTRDUPD_TEST_DUPEREMOVE="$binary" \
  --test_arg=--gtest_filter='Releases/*/Real' \
  --test_output=all >"$log" 2>&1 || status=$?
grep -E '^\[ +(OK|FAILED) +\] Releases|^\[ +(PASSED|FAILED) +\] [0-9]+ test' "$log" |
  sed -E 's/, where GetParam\(\).*//' | sort -u
if [[ $status -ne 0 ]]; then
  echo "--- failures ---"
  grep -E 'Failure|Expected|Actual|Which is|status' "$log" | head -40
fi
exit $status
