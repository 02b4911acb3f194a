#!/bin/bash
# Many small files, one-shot: btrdupd's full pass against jdupes -rB on the same data,
# then btrdupd's next pass after 100 new files (it must not see its own dedupes again).
#
#   sudo bench/many_files_bench.sh [--files=N] [--jdupes|--no-jdupes] [BTRDUPD_BINARY]
#   (or: sudo bazel run -c opt //bench:many_files_bench -- [options])
#
# Data (deterministic): N files (default 300000) of 8-24 KiB in 1000-file directories on
# a fresh loopback btrfs; every 10th file is a copy of an earlier one (N/10 duplicates).
# Steps, each with cold caches (drop_caches) and timed with /usr/bin/time -v:
#   1. btrdupd --no-wait (database outside the volume): the first, full pass: scan,
#      hash the files that share their size, dedupe;
#   2. 100 new files in 10 directories (10 of them copies of existing files; as in
#      scan_bench), sync, btrdupd --no-wait -v again: an incremental pass; its scan time
#      and the files it looked at come from btrdupd's own -v lines, the device reads
#      from /sys/block/loopN/stat;
#   3. a third pass with nothing changed;
#   4. jdupes -rBq on a fresh copy of the image from before step 1 (nice 19, idle I/O).
# Then the database size per tracked file (after hashing, after a checkpoint).
#
# Needs root, mkfs.btrfs, jdupes, GNU time, python3. Leaves nothing behind.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
files=300000
run_jdupes=1
btrdupd=""
for arg in "$@"; do
  case "$arg" in
    --files=*) files="${arg#--files=}" ;;
    --jdupes) run_jdupes=1 ;;
    --no-jdupes) run_jdupes=0 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
    *) btrdupd="$arg" ;;
  esac
done
[[ "$files" =~ ^[1-9][0-9]*$ && "$files" -ge 1000 ]] || { echo "--files must be a number >= 1000" >&2; exit 2; }
# Beside this script in a checkout; in the runfiles (the working directory) under bazel run.
source "$here/bench_lib.sh" 2>/dev/null || source "$PWD/bench/bench_lib.sh"
btrdupd="$(bench_find_btrdupd "$btrdupd" "$here")" || exit 2
bench_require_root_and_tools many_files_bench.sh mkfs.btrfs python3 losetup
[[ "$run_jdupes" == 0 ]] || command -v jdupes >/dev/null || { echo "missing jdupes (or pass --no-jdupes)" >&2; exit 2; }
bench_make_workspace many-bench
mkdir -p "$work/db"

timed() {  # label, command...: runs it with cold caches; prints wall, RSS, device reads
  local label="$1"; shift
  sync
  echo 3 > /proc/sys/vm/drop_caches
  local s0; s0="$(sectors_read)"
  local rc=0
  /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/out.txt" 2>&1 || rc=$?
  local s1; s1="$(sectors_read)"
  local wall rss
  wall="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time.txt" |
          awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')"
  rss="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")"
  printf '%-44s wall %7.2f s  peak RSS %5.1f MiB  read %8.1f MiB  exit %d\n' "$label" "$wall" \
    "$(echo "$rss / 1024" | bc -l)" "$(echo "($s1 - $s0) * 512 / 1048576" | bc -l)" "$rc"
  if [[ "$rc" != 0 ]]; then tail -5 "$work/out.txt" >&2; fi
}

echo "Preparing $files files in $work ..." >&2
truncate -s $(( files * 40 * 1024 + 2 * 1024 * 1024 * 1024 )) "$work/master.img"
mkfs.btrfs -q -f "$work/master.img" >/dev/null
attach_and_mount "$work/master.img"
python3 - "$mnt" "$files" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261130)
block = rng.randbytes(24 * 1024 + 64)
sizes = []
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.mkdir(d)
    if i % 10 == 9:  # a copy of an earlier file
        j = rng.randrange(i)
        while j % 10 == 9:
            j = rng.randrange(i)
        src = os.path.join(root, "d%04d" % (j // 1000), "f%06d" % j)
        with open(src, "rb") as f:
            data = f.read()
    else:
        size = rng.randint(8 * 1024, 24 * 1024)
        head = b"%016d" % i
        off = rng.randint(0, 63)
        data = head + block[off:off + size - len(head)]
    with open(os.path.join(d, "f%06d" % i), "wb") as f:
        f.write(data)
EOF
sync
unmount_and_detach
[[ "$run_jdupes" == 0 ]] || cp --sparse=always "$work/master.img" "$work/peer.img"

echo "== many_files_bench: $files files of 8-24 KiB, every 10th a copy of an earlier one"
echo "   btrdupd $("$btrdupd" --version 2>&1 | head -1), $(nproc) cores, kernel $(uname -r)," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
attach_and_mount "$work/master.img"
timed "btrdupd full pass (scan, hash, dedupe)" "$btrdupd" --no-wait --db-path="$work/db" "$mnt"
grep "^$mnt: " "$work/out.txt" | sed 's/^/    /'

python3 - "$mnt" "$files" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(100):
    d = os.path.join(root, "d%04d" % ((i % 10) * (n // 10000)))
    if i % 10 == 0:
        j = rng.randrange(n)
        with open(os.path.join(root, "d%04d" % (j // 1000), "f%06d" % j), "rb") as f:
            data = f.read()
    else:
        data = b"new%013d" % i + rng.randbytes(rng.randint(8 * 1024, 24 * 1024))
    with open(os.path.join(d, "new%03d" % i), "wb") as f:
        f.write(data)
EOF
timed "btrdupd pass after 100 new files" "$btrdupd" --no-wait -v --db-path="$work/db" "$mnt"
grep -o 'wall time: .*' "$work/out.txt" | sed 's/^/    /'
grep "^$mnt: " "$work/out.txt" | sed 's/^/    /'
timed "btrdupd pass with nothing changed" "$btrdupd" --no-wait -v --db-path="$work/db" "$mnt"
grep "^$mnt: " "$work/out.txt" | sed 's/^/    /'
unmount_and_detach

db="$(ls "$work"/db/*.btrdupd.db)"
if command -v sqlite3 >/dev/null; then
  sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
  tracked="$(sqlite3 "$db" "SELECT count(*) FROM files")"
  hashed="$(sqlite3 "$db" "SELECT count(*) FROM files WHERE hash_state = 2")"
  bytes="$(stat -c %s "$db")"
  printf 'database after hashing: %d bytes for %d tracked files (%d hashed): %.1f bytes/file\n' \
    "$bytes" "$tracked" "$hashed" "$(echo "$bytes / $tracked" | bc -l)"
  echo "  by table and index (pages, bytes/file, payload bytes/file):"
  sqlite3 -separator ' ' "$db" "SELECT name, count(*), sum(pgsize), sum(payload) FROM dbstat
      GROUP BY name ORDER BY sum(pgsize) DESC" 2>/dev/null |
    while read -r name pages size payload; do
      printf '    %-16s %6d pages  %6.1f B/file  (payload %5.1f)\n' "$name" "$pages" \
        "$(echo "$size / $tracked" | bc -l)" "$(echo "$payload / $tracked" | bc -l)"
    done
else
  echo "database after hashing: $(stat -c %s "$db") bytes (install sqlite3 for the breakdown)"
fi

if [[ "$run_jdupes" == 1 ]]; then
  attach_and_mount "$work/peer.img"
  timed "jdupes -rBq (nice 19, idle I/O) on the same data" nice -n 19 ionice -c 3 jdupes -rBq "$mnt"
  unmount_and_detach
fi
