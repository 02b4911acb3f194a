#!/bin/bash
# One huge group of identical files on real btrfs: N copies of one file (distinct
# inodes, nothing shared yet) on a fresh loopback btrfs, deduped by one btrdupd one-shot
# pass with cold caches. The engine's work per batch must not grow with the group
# (core/group_cursor.h), so the pass time grows linearly with N. Prints wall and CPU
# time, peak RSS, device reads, and btrdupd's own summary line.
#
#   sudo bench/identical_group_bench.sh [--files=N] [--size=BYTES] [--snapshots]
#                                       [--compare=BINARY] [BTRDUPD_BINARY]
#   (or: sudo bazel run -c opt //bench:identical_group_bench -- [options])
#
#   --files=N         copies (default 20000), 1000 per directory
#   --size=BYTES      size of each copy (default 8192, the smallest size btrdupd tracks)
#   --snapshots       instead: one file in a subvolume, rewritten (same bytes, new
#                     extents) before each of N - 1 read-only snapshots of it, so the
#                     group is N copies of one path in N subvolumes (a backup host's
#                     file that is rewritten unchanged every hour)
#   --compare=BINARY  another btrdupd build, run on a copy of the same image (A/B)
#
# Needs root, mkfs.btrfs, losetup, GNU time. Leaves nothing behind.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
files=20000
size=8192
btrdupd=""
compare=""
snapshots=0
for arg in "$@"; do
  case "$arg" in
    --files=*) files="${arg#--files=}" ;;
    --size=*) size="${arg#--size=}" ;;
    --compare=*) compare="${arg#--compare=}" ;;
    --snapshots) snapshots=1 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
    *) btrdupd="$arg" ;;
  esac
done
[[ "$files" =~ ^[1-9][0-9]*$ && "$files" -ge 2 ]] || { echo "--files must be a number >= 2" >&2; exit 2; }
[[ "$size" =~ ^[1-9][0-9]*$ && "$size" -ge 8192 ]] || { echo "--size must be a number >= 8192 (min_file_size)" >&2; exit 2; }
# Beside this script in a checkout; in the runfiles (the working directory) under bazel run.
source "$here/bench_lib.sh" 2>/dev/null || source "$PWD/bench/bench_lib.sh"
btrdupd="$(bench_find_btrdupd "$btrdupd" "$here")" || exit 2
bench_require_executable --compare "$compare"
bench_require_root_and_tools identical_group_bench.sh mkfs.btrfs btrfs losetup
bench_make_workspace identical-group-bench

echo "Preparing $files identical files of $size bytes in $work ..." >&2
truncate -s $(( files * (size + 4096) * 2 + 1024 * 1024 * 1024 )) "$work/master.img"
mkfs.btrfs -q -f "$work/master.img" >/dev/null
attach_and_mount "$work/master.img"
head -c "$size" /dev/urandom > "$work/one"
if [[ "$snapshots" == 1 ]]; then
  btrfs -q subvolume create "$mnt/live"
  mkdir "$mnt/snaps"
  for (( i = 1; i < files; i++ )); do
    cp --reflink=never "$work/one" "$mnt/live/f"
    btrfs -q subvolume snapshot -r "$mnt/live" "$mnt/snaps/s$i"
  done
  cp --reflink=never "$work/one" "$mnt/live/f"
else
  for (( d = 0; d * 1000 < files; d++ )); do
    mkdir "$mnt/d$d"
    for (( i = d * 1000; i < files && i < (d + 1) * 1000; i++ )); do
      cp --reflink=never "$work/one" "$mnt/d$d/f$i"
    done
  done
fi
sync
unmount_and_detach
[[ -z "$compare" ]] || cp --sparse=always "$work/master.img" "$work/compare.img"

run() {  # label, binary, image
  mkdir -p "$work/db-$1"
  attach_and_mount "$3"
  sync
  echo 3 > /proc/sys/vm/drop_caches
  local s0 s1 rc=0
  s0="$(sectors_read)"
  /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" \
    "$2" --no-wait --db-dir="$work/db-$1" "$mnt" >"$work/out.txt" 2>&1 || rc=$?
  s1="$(sectors_read)"
  read -r wall user sys rss < "$work/time.txt"
  printf '%-10s %8d %6d %8.2f %8.2f %9.1f %9.1f %5d\n' "$1" "$files" "$size" "$wall" \
    "$(echo "$user + $sys" | bc -l)" "$(echo "$rss / 1024" | bc -l)" \
    "$(echo "($s1 - $s0) * 512 / 1048576" | bc -l)" "$rc"
  grep "^$mnt: " "$work/out.txt" | sed 's/^/    /' || tail -3 "$work/out.txt"
  unmount_and_detach
}

what="$files identical files"
[[ "$snapshots" == 0 ]] || what="one file and $(( files - 1 )) read-only snapshots of it, each copy on its own extents"
echo "== identical_group_bench: one group of $what, $(nproc) cores," \
     "kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %8s %6s %8s %8s %9s %9s %5s\n' "build" "files" "size" "wall s" "CPU s" \
  "RSS MiB" "read MiB" "exit"
run "btrdupd" "$btrdupd" "$work/master.img"
[[ -z "$compare" ]] || run "compare" "$compare" "$work/compare.img"
