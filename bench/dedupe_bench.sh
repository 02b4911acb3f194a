#!/bin/bash
# Dedupe benchmark: btrdupd (native and duperemove backends) against duperemove -dr
# (without and with --hashfile) and jdupes -rB, each on a fresh loopback btrfs holding
# the same generated data set, with cold caches. Prints one table.
#
#   sudo bench/dedupe_bench.sh [BTRDUPD_BINARY]     (or: bazel run -c opt //bench:dedupe_bench)
#
# Data set (bench/dedupe_bench.py, deterministic): real trees of this machine
# (/usr/share/doc, /usr/lib/python3.11, /usr/share/man) copied twice; 128 MiB x2 and
# 64 MiB x3 random files; 400 identical 64 KiB files; 32 same-size 4 MiB decoys (16
# differing in the first block, 16 in the last 8 bytes); 2000 small files (< 8 KiB) in
# identical pairs. About 1.2 GiB.
#
# Per tool: copy the prepared image (same data, same layout), attach and mount it,
# sync, read `btrfs filesystem usage -b` (Data used), drop caches, run the tool under
# /usr/bin/time -v, sync, read the usage again. Bytes read = the loop device's sectors
# read (/sys/block/loopN/stat) during the run. btrdupd runs with --no-wait (no stability
# wait) and its database outside the volume (--db-path), like duperemove's hashfile.
#
# "expected" = bytes a perfect whole-file deduper reclaims: (copies - 1) * size over
# every group of identical files >= 8192 bytes (min_file_size).
#
# Needs root, mkfs.btrfs, duperemove, jdupes, GNU time, python3. Leaves nothing behind.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
btrdupd="${1:-}"
if [[ -z "$btrdupd" ]]; then
  for candidate in "$PWD/daemon/btrdupd" "$here/../daemon/btrdupd" "$here/../bazel-bin/daemon/btrdupd"; do
    [[ -x "$candidate" ]] && btrdupd="$(cd "$(dirname "$candidate")" && pwd)/btrdupd" && break
  done
fi
[[ -x "$btrdupd" ]] || { echo "btrdupd binary not found: pass its path, or build it with: bazel build -c opt //daemon:btrdupd" >&2; exit 2; }
datagen="$here/dedupe_bench.py"
[[ -f "$datagen" ]] || datagen="$PWD/bench/dedupe_bench.py"
[[ "$(id -u)" == 0 ]] || { echo "dedupe_bench.sh must run as root (mount, drop_caches)" >&2; exit 2; }
for tool in mkfs.btrfs btrfs duperemove jdupes python3 losetup; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run the setup script)" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 2; }

work="$(mktemp -d /var/tmp/btrdupd-dedupe-bench.XXXXXX)"
mnt="$work/mnt"
mkdir -p "$mnt"
loopdev=""
cleanup() {
  if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt"; fi
  [[ -n "$loopdev" ]] && losetup -d "$loopdev" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

attach_and_mount() {  # image
  loopdev="$(losetup --find --show "$1")"
  mount "$loopdev" "$mnt"
}
unmount_and_detach() {
  umount "$mnt"
  losetup -d "$loopdev"
  loopdev=""
}
data_used() {
  btrfs filesystem usage -b "$mnt" | sed -n 's/^Data,[^:]*:.*Used:\([0-9]*\).*/\1/p' | head -1
}
sectors_read() {
  awk '{print $3}' "/sys/block/$(basename "$loopdev")/stat"
}

echo "Preparing the data set in $work ..." >&2
truncate -s 3G "$work/master.img"
mkfs.btrfs -q -f "$work/master.img" >/dev/null
attach_and_mount "$work/master.img"
python3 "$datagen" generate "$mnt"
sync
read -r expected expected_files < <(python3 "$datagen" expected "$mnt" 8192)
total_bytes="$(du -sb --apparent-size "$mnt" | awk '{print $1}')"
total_files="$(find "$mnt" -type f | wc -l)"
unmount_and_detach

run_tool() {  # name, command... ({MNT} and {WORK} are substituted)
  local name="$1"; shift
  local args=() a
  rm -rf "$work/db" "$work/hashfile"; mkdir -p "$work/db"
  cp --sparse=always "$work/master.img" "$work/run.img"
  attach_and_mount "$work/run.img"
  for a in "$@"; do a="${a//\{MNT\}/$mnt}"; args+=("${a//\{WORK\}/$work}"); done
  sync
  local before; before="$(data_used)"
  echo 3 > /proc/sys/vm/drop_caches
  local s0; s0="$(sectors_read)"
  echo "Running $name: ${args[*]}" >&2
  local rc=0
  /usr/bin/time -v -o "$work/time.txt" "${args[@]}" >"$work/$name.out" 2>&1 || rc=$?
  local s1; s1="$(sectors_read)"
  sync
  local after; after="$(data_used)"
  local wall user sys rss
  wall="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time.txt" |
          awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')"
  user="$(sed -n 's/.*User time (seconds): //p' "$work/time.txt")"
  sys="$(sed -n 's/.*System time (seconds): //p' "$work/time.txt")"
  rss="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")"
  cat > "$work/result.$name" <<RESULT
tool=$name
wall=$wall
user=$user
sys=$sys
maxrss_kb=$rss
used_before=$before
used_after=$after
read_bytes=$(( (s1 - s0) * 512 ))
exit=$rc
expected=$expected
RESULT
  if [[ "$rc" != 0 ]]; then
    echo "$name exited with $rc; last lines of its output:" >&2
    tail -5 "$work/$name.out" >&2
  fi
  unmount_and_detach
  rm -f "$work/run.img"
}

run_tool btrdupd-native "$btrdupd" --no-wait --db-path={WORK}/db {MNT}
run_tool btrdupd-duperemove "$btrdupd" --no-wait --backend=duperemove --db-path={WORK}/db {MNT}
# btrdupd lowers its own priority (nice 19, idle I/O class); the peers run at the same
# priority so that other load on the machine weighs on every tool alike.
low=(nice -n 19 ionice -c 3)
run_tool duperemove-dr "${low[@]}" duperemove -dr -q {MNT}
run_tool duperemove-dr-hashfile "${low[@]}" duperemove -dr -q --hashfile={WORK}/hashfile {MNT}
run_tool jdupes-rB "${low[@]}" jdupes -rBq {MNT}

echo
echo "Dedupe benchmark: $total_files files, $(( total_bytes / 1048576 )) MiB; expected reclaimable" \
     "(files >= 8192 B): $(( expected / 1048576 )) MiB ($expected bytes, $expected_files files)"
echo "Each tool: fresh loopback btrfs with the same data, sync, cold caches, /usr/bin/time -v;"
echo "reclaimed = Data used before - after (btrfs filesystem usage -b); read = loop device reads."
echo "Commands (btrdupd sets nice 19 + idle I/O class itself; the others run under"
echo "'nice -n 19 ionice -c 3'; DIR is outside the volume):"
echo "  btrdupd-native          btrdupd --no-wait --db-path=DIR MNT"
echo "  btrdupd-duperemove      btrdupd --no-wait --backend=duperemove --db-path=DIR MNT"
echo "  duperemove-dr           duperemove -dr -q MNT"
echo "  duperemove-dr-hashfile  duperemove -dr -q --hashfile=DIR/hashfile MNT"
echo "  jdupes-rB               jdupes -rBq MNT"
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(duperemove --version 2>&1 | head -1), $(jdupes -v | head -1 | cut -d' ' -f1-2), $(nproc) cores, kernel $(uname -r)"
echo
python3 "$datagen" table "$work"/result.btrdupd-native "$work"/result.btrdupd-duperemove \
  "$work"/result.duperemove-dr "$work"/result.duperemove-dr-hashfile "$work"/result.jdupes-rB
