#!/bin/bash
# A stand-in for duperemove(8) in tests, to exercise what btrdupd does with releases
# other than the one installed. It reports the version in $STUB_VERSION (default
# v0.15.2) and does what that release's `--fdupes -d` does with a group: keeps the
# file it keeps as the source ($STUB_KEEPS: "last", the default, as 0.15 does, or
# "first", as up to 0.14), aborts like duperemove on two names of one inode number
# (exit by SIGABRT), refuses -A unless $STUB_ACCEPT_A is set (0.13 removed it). The
# dedupe itself is done by the real duperemove ($STUB_REAL, default
# /usr/bin/duperemove, 0.11 with its first-file order) given the group reordered.
#
# $STUB_MODE makes it fail instead: "usage" (a usage error, exit 1), "term" (killed by
# SIGTERM, as at systemd stop), "crash" (SIGSEGV), "hang" (writes "PID PGID SLEEPPID"
# to $STUB_PIDS and sleeps; btrdupd's deadline must kill its whole group).
# $STUB_LOG, if set, gets one line per group: the number of files and their inode
# numbers.
set -u
real=${STUB_REAL:-/usr/bin/duperemove}
if [[ "${1:-}" == "--version" ]]; then
  echo "duperemove ${STUB_VERSION:-v0.15.2}"
  exit 0
fi
for arg in "$@"; do
  if [[ "$arg" == "-A" && -z "${STUB_ACCEPT_A:-}" ]]; then
    echo "$0: invalid option -- 'A'" >&2
    exit 1
  fi
done
case "${STUB_MODE:-}" in
  usage) echo "$0: unrecognized option '--frob'" >&2; exit 1 ;;
  term) kill -TERM $$ ;;
  crash) kill -SEGV $$ ;;
  hang)
    sleep 600 &
    echo "$$ $(ps -o pgid= -p $$ | tr -d ' ') $!" > "${STUB_PIDS:?}"
    wait
    exit 0 ;;
esac
group=()
run_group() {
  local -A seen=()
  local inos=""
  for name in "${group[@]}"; do
    ino=$(stat -L -c %i "$name")
    if [[ -n "${seen[$ino]:-}" ]]; then
      echo "ERROR: filerec.c:140" >&2
      kill -ABRT $$
    fi
    seen[$ino]=1
    inos+=" $ino"
  done
  if [[ -n "${STUB_LOG:-}" ]]; then echo "${#group[@]}$inos" >> "$STUB_LOG"; fi
  local ordered=("${group[@]}")
  if [[ "${STUB_KEEPS:-last}" == "last" ]]; then
    ordered=()
    for ((i = ${#group[@]} - 1; i >= 0; i--)); do ordered+=("${group[$i]}"); done
  fi
  { printf '%s\n' "${ordered[@]}"; echo; } | "$real" -d -A -b 4096 --fdupes
}
while IFS= read -r line; do
  if [[ -z "$line" ]]; then
    if ((${#group[@]} > 0)); then run_group || exit $?; fi
    group=()
  else
    group+=("$line")
  fi
done
exit 0
