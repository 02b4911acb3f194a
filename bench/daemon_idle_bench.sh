#!/usr/bin/env bash
# Benchmark: what btrdupd's daemon costs when there is nothing to do, and how soon new
# duplicates are deduped. Prints figures; asserts nothing.
#
#   sudo bench/daemon_idle_bench.sh [FILES] [IDLE_SECONDS]
#   (or: sudo bazel run -c opt //bench:daemon_idle_bench -- [FILES] [IDLE_SECONDS])
#
# FILES (default 300000) files of 8-24 KiB, unique contents, in 1000-file directories,
# on a fresh loopback btrfs in a temp dir. Steps:
#   1. generate the files; start `btrdupd --daemon` on the volume (real time, default
#      --scan-interval=60s, initial_wait_minutes=1 in .btrdupd.conf);
#   2. wait until the initial full scan and the hashing of every candidate are done
#      (status: nothing to hash or dedupe), and report how long that took;
#   3. idle: sample utime+stime (/proc/PID/stat, 10 ms ticks) and on-CPU time
#      (/proc/PID/schedstat, ns) over IDLE_SECONDS (default 600) of idle and
#      extrapolate to one hour; report RSS (VmRSS) and peak RSS (VmHWM);
#   4. write 100 new files, each a copy of an existing file, and report the time from the
#      last write, minus the 1-minute stability wait, until all 100 are deduped.
# Targets (issue 5): under 1 CPU-second per idle hour; RSS under 40 MiB.
#
# Needs root (mount), python3, btrfs-progs; builds //daemon:btrdupd unless BTRDUPD points
# at a binary. Everything is removed at exit.
set -euo pipefail

FILES=${1:-300000}
IDLE_SECONDS=${2:-600}
DUPES=100

if [ "$(id -u)" -ne 0 ]; then
  echo "daemon_idle_bench: needs root (it mounts a loopback btrfs)" >&2
  exit 1
fi

# Under `bazel run //bench:daemon_idle_bench` the binary is in the runfiles.
if [ -z "${BTRDUPD:-}" ] && [ -x "${RUNFILES_DIR:-$0.runfiles}/btrdupd/daemon/btrdupd" ]; then
  BTRDUPD="${RUNFILES_DIR:-$0.runfiles}/btrdupd/daemon/btrdupd"
fi
if [ -z "${BTRDUPD:-}" ]; then
  cd "$(dirname "$0")/.."
  bazel --output_base="${BAZEL_OUTPUT_BASE:-$HOME/.cache/bazel-daemon}" build -c opt \
    //daemon:btrdupd >/dev/null 2>&1
  BTRDUPD="$(bazel --output_base="${BAZEL_OUTPUT_BASE:-$HOME/.cache/bazel-daemon}" \
    info -c opt bazel-bin 2>/dev/null)/daemon/btrdupd"
fi

WORK=$(mktemp -d /tmp/btrdupd-bench-XXXXXX)
MNT="$WORK/mnt"
SOCKDIR="$WORK/sock"
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  if mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT"; fi
  for dev in $(losetup -j "$WORK/img" -O NAME -n 2>/dev/null); do losetup -d "$dev" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$MNT" "$SOCKDIR"
# 8-24 KiB files: about 16 KiB each on average plus metadata.
truncate -s $(( FILES * 24 * 1024 + 2 * 1024 * 1024 * 1024 )) "$WORK/img"
mkfs.btrfs -q -f "$WORK/img"
mount -o loop "$WORK/img" "$MNT"
printf '[DEFAULT]\ninitial_wait_minutes = 1\n' > "$MNT/.btrdupd.conf"

echo "== daemon_idle_bench: $FILES files, $IDLE_SECONDS s idle sample"
t0=$(date +%s.%N)
python3 - "$MNT" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
block = rng.randbytes(24 * 1024 + 64)
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.mkdir(d)
    size = rng.randint(8 * 1024, 24 * 1024)
    head = b"%016d" % i          # unique contents: no duplicates at start
    off = rng.randint(0, 63)
    with open(os.path.join(d, "f%06d" % i), "wb") as f:
        f.write(head + block[off:off + size - len(head)])
EOF
sync
t1=$(date +%s.%N)
printf 'generated %d files in %.1f s\n' "$FILES" "$(echo "$t1 - $t0" | bc)"

# Extra daemon options from the environment, e.g. BTRDUPD_ARGS="--db-path=$WORK/db"
# ($WORK is expanded here) to keep the database outside the measured volume.
extra_args=$(eval echo "${BTRDUPD_ARGS:-}")
[ -n "$extra_args" ] && echo "daemon options: $extra_args"
mkdir -p "$WORK/db"
# shellcheck disable=SC2086
"$BTRDUPD" --daemon --socket-dir="$SOCKDIR" $extra_args "$MNT" 2>"$WORK/daemon.log" &
PID=$!
status() { "$BTRDUPD" --daemon-status --json --socket-dir="$SOCKDIR" "$MNT" 2>/dev/null || true; }
field() { python3 -c 'import json,sys
try:
  d=json.loads(sys.stdin.read() or "{}")
except Exception:
  d={}
for k in sys.argv[1].split("."):
  d=d.get(k, None) if isinstance(d, dict) else None
print(-1 if d is None else d)' "$1"; }

# 2. Initial work: full scan, 1-minute wait, hashing every file that shares its size.
t_start=$(date +%s.%N)
while :; do
  s=$(status)
  if [ -n "$s" ] && [ "$(echo "$s" | field last_full_scan)" != "-1" ] \
     && [ "$(echo "$s" | field queues.files_to_hash)" = "0" ] \
     && [ "$(echo "$s" | field queues.files_to_dedupe)" = "0" ] \
     && [ "$(echo "$s" | field queues.files_waiting)" = "0" ]; then
    break
  fi
  if ! kill -0 "$PID" 2>/dev/null; then echo "daemon died:"; cat "$WORK/daemon.log"; exit 1; fi
  sleep 2
done
t_ready=$(date +%s.%N)
s=$(status)
printf 'initial full scan + 1 min wait + hashing: %.0f s (files tracked: %s, database: %s bytes)\n' \
  "$(echo "$t_ready - $t_start" | bc)" "$(echo "$s" | field files_tracked)" \
  "$(echo "$s" | field database_bytes)"
# Let the last pass end and the engine go idle.
sleep 5

# 3. Idle.
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
cpu_ns() { local sum=0; for f in /proc/$PID/task/*/schedstat; do sum=$(( sum + $(awk '{print $1}' "$f") )); done; echo $sum; }
c0=$(cpu_ticks); n0=$(cpu_ns); w0=$(date +%s.%N)
sleep "$IDLE_SECONDS"
c1=$(cpu_ticks); n1=$(cpu_ns); w1=$(date +%s.%N)
wall=$(echo "$w1 - $w0" | bc)
rss=$(awk '/VmRSS/{print $2}' "/proc/$PID/status")
hwm=$(awk '/VmHWM/{print $2}' "/proc/$PID/status")
printf 'idle: %.0f s sampled; utime+stime %d ticks (%.2f s) -> %.3f CPU-s per hour (extrapolated)\n' \
  "$wall" $(( c1 - c0 )) "$(echo "($c1 - $c0) / $ticks" | bc -l)" \
  "$(echo "($c1 - $c0) / $ticks * 3600 / $wall" | bc -l)"
printf 'idle: on-CPU (schedstat) %.4f s -> %.4f CPU-s per hour (extrapolated)\n' \
  "$(echo "($n1 - $n0) / 1000000000" | bc -l)" \
  "$(echo "($n1 - $n0) / 1000000000 * 3600 / $wall" | bc -l)"
printf 'RSS: %.1f MiB now, %.1f MiB peak (VmHWM, includes the initial scan and hashing)\n' \
  "$(echo "$rss / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)"

# 4. 100 new duplicates.
before=$(status | field files_deduped)
for i in $(seq 0 $(( DUPES - 1 ))); do
  j=$(( (i * 2999) % FILES ))
  src=$(printf '%s/d%04d/f%06d' "$MNT" $(( j / 1000 )) "$j")
  cp --reflink=never "$src" "$MNT/new_$i"
done
sync
t_written=$(date +%s.%N)
while :; do
  now_deduped=$(status | field files_deduped)
  if [ "$now_deduped" -ge $(( before + DUPES )) ] 2>/dev/null; then break; fi
  if ! kill -0 "$PID" 2>/dev/null; then echo "daemon died:"; cat "$WORK/daemon.log"; exit 1; fi
  sleep 0.5
done
t_done=$(date +%s.%N)
lat=$(echo "$t_done - $t_written" | bc)
printf '%d new duplicates: deduped %.1f s after the last write = 60 s stability wait + %.1f s (until the next change check saw them, at most 60 s, plus processing)\n' \
  "$DUPES" "$lat" "$(echo "$lat - 60" | bc)"
printf 'RSS after: %.1f MiB\n' "$(echo "$(awk '/VmRSS/{print $2}' "/proc/$PID/status") / 1024" | bc -l)"
kill -TERM "$PID"; wait "$PID" || true; PID=""
echo "daemon log (last lines):"; tail -n 5 "$WORK/daemon.log"
