#!/bin/bash
# Snapshot benchmark: a backup host's volume, one subvolume of FILES distinct files
# (8-58 KiB) and SNAPSHOTS read-only snapshots of it (no file changed in between, so
# every snapshot file shares its extents with its source), on a fresh loopback btrfs.
# Prints one table: per tool, the first pass, the pass after one more snapshot, the pass
# after deleting the oldest snapshot (wall s, CPU s, peak RSS, MiB read from the device,
# cold caches before each), and the size of the database / hashfile.
#
#   sudo bench/snapshot_bench.sh [OPTIONS]      (or: bazel run -c opt //bench:snapshot_bench -- OPTIONS)
#
#   --files=N            files in the subvolume (default 20000)
#   --snapshots=N        read-only snapshots before the first pass (default 20)
#   --btrdupd=PATH       btrdupd binary (default: the one built next to this script)
#   --duperemove=PATH    duperemove binary to compare with (default: $DUPEREMOVE; none =
#                        btrdupd only). Runs as `duperemove -dr --hashfile=FILE VOLUME`.
#   --self-check         instead: btrdupd alone, FILES files without snapshots vs the
#                        same with SNAPSHOTS snapshots (defaults 10000 and 10), and the
#                        ratios the targets are stated in
#
# Each tool gets its own copy of the prepared image (same data, same layout). btrdupd
# runs one-shot with --no-wait and its database outside the volume (--db-path), like
# duperemove's hashfile. Nothing is left behind. Needs root, mkfs.btrfs, btrfs,
# python3, GNU time.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
files=""
snapshots=""
btrdupd=""
duperemove="${DUPEREMOVE:-}"
self_check=0
for arg in "$@"; do
  case "$arg" in
    --files=*) files="${arg#*=}" ;;
    --snapshots=*) snapshots="${arg#*=}" ;;
    --btrdupd=*) btrdupd="${arg#*=}" ;;
    --duperemove=*) duperemove="${arg#*=}" ;;
    --self-check) self_check=1 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "snapshot_bench.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ "$self_check" == 1 ]]; then
  files="${files:-10000}"; snapshots="${snapshots:-10}"
else
  files="${files:-20000}"; snapshots="${snapshots:-20}"
fi
[[ "$files" =~ ^[0-9]+$ && "$files" -ge 2 ]] || { echo "--files must be an integer >= 2" >&2; exit 2; }
[[ "$snapshots" =~ ^[0-9]+$ && "$snapshots" -ge 1 ]] || { echo "--snapshots must be an integer >= 1" >&2; exit 2; }
# Beside this script in a checkout; in the runfiles (the working directory) under bazel run.
source "$here/bench_lib.sh" 2>/dev/null || source "$PWD/bench/bench_lib.sh"
btrdupd="$(bench_find_btrdupd "$btrdupd" "$here")" || exit 2
bench_require_executable --duperemove "$duperemove"
bench_require_root_and_tools snapshot_bench.sh mkfs.btrfs btrfs python3 losetup
bench_make_workspace snapshot-bench

# Fills SUBVOL with N distinct files of 8-58 KiB, 500 per directory.
generate() {  # dir count
  python3 - "$1" "$2" <<'EOF'
import os, random, sys
top, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261130)
for i in range(n):
    d = os.path.join(top, "d%03d" % (i // 500))
    if i % 500 == 0:
        os.makedirs(d, exist_ok=True)
    size = rng.randint(8 * 1024, 58 * 1024)
    with open(os.path.join(d, "f%06d" % i), "wb") as f:
        f.write(i.to_bytes(8, "little") + rng.randbytes(size - 8))
EOF
}

snapshot() {  # name
  btrfs -q subvolume snapshot -r "$mnt/data" "$mnt/snaps/$1" >/dev/null
}

# Runs one timed step; prints "wall cpu rss_mib read_mib".
timed() {  # command...
  sync
  echo 3 > /proc/sys/vm/drop_caches
  local before after
  before="$(sectors_read)"
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/out" 2>&1 || {
    echo "step failed: $*" >&2; cat "$work/out" >&2; exit 1; }
  after="$(sectors_read)"
  read -r wall user sys rss < "$work/time"
  python3 -c "import sys; w,u,s,r,b=sys.argv[1:]; print('%.2f %.2f %.1f %.1f' % (float(w), float(u)+float(s), int(r)/1024, int(b)*512/1048576))" \
    "$wall" "$user" "$sys" "$rss" "$((after - before))"
}

prepare() {  # image files snapshots
  truncate -s "$(( (files * 40 / 1024) + 1024 ))M" "$1"
  mkfs.btrfs -q -f "$1" >/dev/null
  attach_and_mount "$1"
  btrfs -q subvolume create "$mnt/data" >/dev/null
  mkdir "$mnt/snaps"
  generate "$mnt/data" "$2"
  sync
  local i
  for ((i = 1; i <= $3; i++)); do snapshot "$(printf 's%03d' "$i")"; done
  sync
  unmount_and_detach
}

run_btrdupd() { timed "$btrdupd" --no-wait --db-path="$work/db" "$mnt"; }
run_duperemove() { timed "$duperemove" -dr -q --hashfile="$work/hashfile" "$mnt"; }

# One tool over the three steps on a copy of the prepared image; prints a table block.
scenario() {  # tool snapshots
  local tool="$1" n="$2" first more del size
  rm -rf "$work/db" "$work/hashfile"
  mkdir -p "$work/db"
  cp --sparse=always "$work/master.img" "$work/run.img"
  attach_and_mount "$work/run.img"
  first="$(run_"$tool")"
  snapshot "$(printf 's%03d' "$((n + 1))")"
  more="$(run_"$tool")"
  btrfs -q subvolume delete "$mnt/snaps/s001" >/dev/null
  btrfs -q subvolume sync "$mnt" >/dev/null 2>&1 || true
  del="$(run_"$tool")"
  if [[ "$tool" == btrdupd ]]; then
    size="$(du -cb "$work"/db/* | tail -1 | awk '{print $1}')"
  else
    size="$(du -cb "$work"/hashfile* | tail -1 | awk '{print $1}')"
  fi
  unmount_and_detach
  rm -f "$work/run.img"
  for step in "first pass:$first" "one more snapshot:$more" "oldest deleted:$del"; do
    printf '%-12s %-18s %8s %7s %8s %9s\n' "$tool" "${step%%:*}" ${step#*:}
  done
  printf '%-12s %-18s %s\n' "$tool" "database MiB" \
    "$(python3 -c "print('%.1f (%.1f B per snapshot entry)' % ($size/1048576, $size/($files*($n+1))))")"
}

header() {
  printf '%-12s %-18s %8s %7s %8s %9s\n' tool step "wall s" "cpu s" "RSS MiB" "read MiB"
}

if [[ "$self_check" == 1 ]]; then
  echo "Preparing $files files alone, and with $snapshots snapshots, in $work ..." >&2
  prepare "$work/alone.img" "$files" 0
  prepare "$work/master.img" "$files" "$snapshots"
  cp --sparse=always "$work/alone.img" "$work/run.img"
  mkdir -p "$work/db0"
  attach_and_mount "$work/run.img"
  alone="$(timed "$btrdupd" --no-wait --db-path="$work/db0" "$mnt")"
  unmount_and_detach
  rm -f "$work/run.img" "$work/alone.img"
  header
  printf '%-12s %-18s %8s %7s %8s %9s\n' btrdupd "alone: first pass" $alone
  block="$(scenario btrdupd "$snapshots")"
  echo "$block"
  first="$(awk '/first pass/ {print $4}' <<<"$block")"
  more="$(awk '/one more snapshot/ {print $5}' <<<"$block")"
  python3 -c "import sys; a,f,m=map(float,sys.argv[1:]); print('with %s snapshots: first pass %.2fx the pass alone (target <= 3x); one more snapshot %.3fx (target <= 0.2x)' % ('$snapshots', f/a, m/a))" \
    "${alone%% *}" "$first" "$more"
  exit 0
fi

echo "Preparing $files files + $snapshots read-only snapshots in $work ..." >&2
prepare "$work/master.img" "$files" "$snapshots"
header
scenario btrdupd "$snapshots"
if [[ -n "$duperemove" ]]; then
  scenario duperemove "$snapshots"
fi
