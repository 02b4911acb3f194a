# Shared by the bench/*.sh scripts (sourced, not run): finding the btrdupd binary, the
# checks every bench makes before it mounts anything, and one loopback btrfs workspace
# with its device counters. Each bench keeps its own options, data and table.
#
#   here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
#   source "$here/bench_lib.sh" 2>/dev/null || source "$PWD/bench/bench_lib.sh"  # bazel run
#   btrdupd="$(bench_find_btrdupd "$btrdupd" "$here")" || exit 2
#   bench_require_root_and_tools NAME mkfs.btrfs losetup ...
#   bench_make_workspace NAME          # sets work, mnt, loopdev; removes all on exit
#   attach_and_mount IMAGE; ...; unmount_and_detach

# Prints the absolute path of the btrdupd binary: $1 if given, else the first one found
# in the usual places (a `bazel run` runfiles tree, a checkout after `bazel build`).
bench_find_btrdupd() {  # given, here
  local given="$1" here="$2" candidate
  if [[ -z "$given" ]]; then
    for candidate in "$PWD/daemon/btrdupd" "$here/../daemon/btrdupd" "$here/../bazel-bin/daemon/btrdupd"; do
      if [[ -x "$candidate" ]]; then
        given="$(cd "$(dirname "$candidate")" && pwd)/btrdupd"
        break
      fi
    done
  fi
  if [[ ! -x "$given" ]]; then
    echo "btrdupd binary not found: pass its path, or build it with: bazel build -c opt //daemon:btrdupd" >&2
    return 1
  fi
  echo "$given"
}

# Exits 2 unless PATH is empty (the option was not given) or an executable file.
bench_require_executable() {  # option name, path
  [[ -z "$2" || -x "$2" ]] || { echo "$1=$2 is not an executable file" >&2; exit 2; }
}

# Exits 2 with a message naming what is missing: root, a tool, GNU time.
bench_require_root_and_tools() {  # bench name, tool...
  local name="$1" tool; shift
  [[ "$(id -u)" == 0 ]] || { echo "$name must run as root (mount, drop_caches)" >&2; exit 2; }
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (run the setup script)" >&2; exit 2; }
  done
  [[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 2; }
}

# Makes $work (a temporary directory under /var/tmp) with the mount point $mnt, and a trap
# that unmounts, detaches and removes everything on exit, also on failure.
bench_make_workspace() {  # bench name
  work="$(mktemp -d "/var/tmp/btrdupd-$1.XXXXXX")"
  mnt="$work/mnt"
  mkdir -p "$mnt"
  loopdev=""
  trap bench_cleanup_workspace EXIT
}

bench_cleanup_workspace() {
  if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt"; fi
  [[ -n "$loopdev" ]] && losetup -d "$loopdev" 2>/dev/null || true
  rm -rf "$work"
}

attach_and_mount() {  # image
  loopdev="$(losetup --find --show "$1")"
  mount "$loopdev" "$mnt"
}

unmount_and_detach() {
  umount "$mnt"
  losetup -d "$loopdev"
  loopdev=""
}

# 512-byte sectors read from the mounted image's loop device so far.
sectors_read() { awk '{print $3}' "/sys/block/$(basename "$loopdev")/stat"; }

# Bytes of data the mounted btrfs holds (btrfs filesystem usage, Data "Used").
data_used() {
  btrfs filesystem usage -b "$mnt" | sed -n 's/^Data,[^:]*:.*Used:\([0-9]*\).*/\1/p' | head -1
}
