#!/usr/bin/env bash
# Installs every Debian package btrdupd needs to build, test, benchmark and run.
# Does nothing when all of them are present. Needs root (it calls apt-get).
set -euo pipefail

packages=(
  # Build.
  bazel-bootstrap g++ libabsl-dev libsqlite3-dev libbtrfsutil-dev libssl-dev
  libgtest-dev libgmock-dev
  # Tests: loopback btrfs, chattr, losetup/mount, the test-count script.
  btrfs-progs e2fsprogs util-linux mount python3 sqlite3 procps
  # Tests: the manual page is rendered with man -l.
  man-db groff-base
  # Runtime fallback backend (--backend=duperemove) and the benchmark's peers.
  duperemove jdupes time
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup.sh: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: missing packages: ${missing[*]}" >&2
  echo "setup.sh: run as root (sudo ./setup.sh) to install them" >&2
  exit 1
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
