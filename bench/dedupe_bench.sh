#!/bin/bash
# Dedupe benchmark: btrdupd (native and duperemove backends; with --jobs=2 too when the
# binary has it) against Debian's duperemove -dr (without and with --hashfile), the
# current duperemove -dr (when its path is given) and jdupes -rB, each on a fresh
# loopback btrfs holding the same generated data set, with cold caches. Prints one table.
#
#   sudo bench/dedupe_bench.sh [--runs=N] [--tools=NAME,...] [--duperemove-current=PATH]
#                              [--compare=BINARY] [BTRDUPD_BINARY]
#   (or: sudo bazel run -c opt //bench:dedupe_bench -- [options])
#
#   --runs=N                  run every tool N times (default 1), interleaved (run 1 of
#                             every tool, then run 2, ...), so load on the machine weighs on
#                             all alike; the table shows the median and the range
#   --tools=LIST              only these rows (names as in the table)
#   --duperemove-current=PATH a duperemove the user built (e.g. 0.15.2); also taken from
#                             $DUPEREMOVE_CURRENT. Never built or fetched here.
#   --compare=BINARY          another btrdupd build, run as the rows btrdupd-B-* (A/B runs
#                             in one session)
#
# Data set (bench/dedupe_bench.py, deterministic): real trees of this machine
# (/usr/share/doc, /usr/lib/python3.11, /usr/share/man) copied twice; 128 MiB x2 and
# 64 MiB x3 random files; 400 identical 64 KiB files; 32 same-size 4 MiB decoys (16
# differing in the first block, 16 in the last 8 bytes); 2000 small files (< 8 KiB) in
# identical pairs. About 1.2 GiB.
#
# Per tool and run: copy the prepared image (same data, same layout), attach and mount
# it, sync, read `btrfs filesystem usage -b` (Data used), drop caches, run the tool under
# /usr/bin/time -v, sync, read the usage again. Bytes read = the loop device's sectors
# read (/sys/block/loopN/stat) during the run. btrdupd runs with --no-wait (no stability
# wait) and its database outside the volume (--db-path), like duperemove's hashfile.
#
# "ideal" = bytes a perfect whole-file deduper reclaims: (copies - 1) * size over every
# group of identical files >= 8192 bytes (min_file_size). "candidates" = bytes of the
# files >= 8192 bytes that share their size with another file (what a size-grouping
# deduper must read at least once).
#
# Needs root, mkfs.btrfs, duperemove, jdupes, GNU time, python3. Leaves nothing behind.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
runs=1
tools=""
dupe_current="${DUPEREMOVE_CURRENT:-}"
compare=""
btrdupd=""
for arg in "$@"; do
  case "$arg" in
    --runs=*) runs="${arg#--runs=}" ;;
    --tools=*) tools="${arg#--tools=}" ;;
    --duperemove-current=*) dupe_current="${arg#--duperemove-current=}" ;;
    --compare=*) compare="${arg#--compare=}" ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
    *) btrdupd="$arg" ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "--runs must be a positive integer, not '$runs'" >&2; exit 2; }
# Beside this script in a checkout; in the runfiles (the working directory) under bazel run.
source "$here/bench_lib.sh" 2>/dev/null || source "$PWD/bench/bench_lib.sh"
btrdupd="$(bench_find_btrdupd "$btrdupd" "$here")" || exit 2
bench_require_executable --duperemove-current "$dupe_current"
bench_require_executable --compare "$compare"
datagen="$here/dedupe_bench.py"
[[ -f "$datagen" ]] || datagen="$PWD/bench/dedupe_bench.py"
bench_require_root_and_tools dedupe_bench.sh mkfs.btrfs btrfs duperemove jdupes python3 losetup
bench_make_workspace dedupe-bench

echo "Preparing the data set in $work ..." >&2
truncate -s 3G "$work/master.img"
mkfs.btrfs -q -f "$work/master.img" >/dev/null
attach_and_mount "$work/master.img"
python3 "$datagen" generate "$mnt"
sync
read -r expected expected_files candidates < <(python3 "$datagen" expected "$mnt" 8192)
total_bytes="$(du -sb --apparent-size "$mnt" | awk '{print $1}')"
total_files="$(find "$mnt" -type f | wc -l)"
unmount_and_detach

run_tool() {  # name, run, command... ({MNT} and {WORK} are substituted)
  local name="$1" run="$2"; shift 2
  local args=() a
  rm -rf "$work/db" "$work/hashfile"; mkdir -p "$work/db"
  cp --sparse=always "$work/master.img" "$work/run.img"
  attach_and_mount "$work/run.img"
  for a in "$@"; do a="${a//\{MNT\}/$mnt}"; args+=("${a//\{WORK\}/$work}"); done
  sync
  local before; before="$(data_used)"
  echo 3 > /proc/sys/vm/drop_caches
  local s0; s0="$(sectors_read)"
  echo "Running $name (run $run of $runs): ${args[*]}" >&2
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
  cat > "$work/result.$name.$run" <<RESULT
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
candidates=$candidates
RESULT
  if [[ "$rc" != 0 ]]; then
    echo "$name exited with $rc; last lines of its output:" >&2
    tail -5 "$work/$name.out" >&2
  fi
  unmount_and_detach
  rm -f "$work/run.img"
}

# btrdupd lowers its own priority (nice 19, idle I/O class); the peers run at the same
# priority so that other load on the machine weighs on every tool alike.
low=(nice -n 19 ionice -c 3)
names=()
declare -A commands
add_tool() {  # name, command...
  local name="$1"; shift
  if [[ -n "$tools" && ",$tools," != *",$name,"* ]]; then return; fi
  names+=("$name")
  commands[$name]="$(printf '%q ' "$@")"
}
has_jobs() { "$1" --help 2>&1 | grep -c -- '--jobs' >/dev/null; }  # -c: reads it all (no SIGPIPE under pipefail)
add_btrdupd() {  # prefix, binary
  add_tool "$1-native" "$2" --no-wait --db-path={WORK}/db {MNT}
  if has_jobs "$2"; then
    add_tool "$1-native-jobs2" "$2" --no-wait --jobs=2 --db-path={WORK}/db {MNT}
  fi
  add_tool "$1-duperemove" "$2" --no-wait --backend=duperemove --db-path={WORK}/db {MNT}
}
add_btrdupd btrdupd "$btrdupd"
[[ -n "$compare" ]] && add_btrdupd btrdupd-B "$compare"
add_tool duperemove-dr "${low[@]}" duperemove -dr -q {MNT}
add_tool duperemove-dr-hashfile "${low[@]}" duperemove -dr -q --hashfile={WORK}/hashfile {MNT}
if [[ -n "$dupe_current" ]]; then
  add_tool duperemove-current-dr "${low[@]}" "$dupe_current" -dr -q {MNT}
fi
add_tool jdupes-rB "${low[@]}" jdupes -rBq {MNT}
[[ ${#names[@]} -gt 0 ]] || { echo "--tools=$tools selects no tool" >&2; exit 2; }

for (( run = 1; run <= runs; run++ )); do
  for name in "${names[@]}"; do
    eval "cmd=(${commands[$name]})"
    run_tool "$name" "$run" "${cmd[@]}"
  done
done

echo
echo "Dedupe benchmark: $total_files files, $(( total_bytes / 1048576 )) MiB; candidates (files >= 8192 B" \
     "sharing their size): $(( candidates / 1048576 )) MiB; whole-file ideal reclaim: $(( expected / 1048576 ))" \
     "MiB ($expected bytes, $expected_files files)"
echo "Each tool: fresh loopback btrfs with the same data, sync, cold caches, /usr/bin/time -v; $runs run(s)"
echo "each, interleaved; figures are the median, [min-max] over the runs."
echo "reclaimed = Data used before - after (btrfs filesystem usage -b); of ideal = reclaimed / ideal;"
echo "read = loop device reads; read/cand = read / candidate bytes."
echo "Commands (btrdupd sets nice 19 + idle I/O class itself; the others run under"
echo "'nice -n 19 ionice -c 3'; DIR is outside the volume):"
for name in "${names[@]}"; do
  printf '  %-24s %s\n' "$name" "$(echo "${commands[$name]}" | sed -e 's/\\\([{}]\)/\1/g' -e 's/nice -n 19 ionice -c 3 //' -e 's/{WORK}/DIR/g' -e 's/{MNT}/MNT/g')"
done
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(duperemove --version 2>&1 | head -1)${dupe_current:+, current $("$dupe_current" --version 2>&1 | head -1)}," \
     "$(jdupes -v | head -1 | cut -d' ' -f1-2), $(nproc) cores, kernel $(uname -r)"
echo
results=()
for name in "${names[@]}"; do
  for (( run = 1; run <= runs; run++ )); do results+=("$work/result.$name.$run"); done
done
python3 "$datagen" table "${results[@]}"
