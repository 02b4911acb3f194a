#!/usr/bin/env bash
# Installs btrdupd: the binary, its systemd unit, the unit's defaults file and the
# btrdupd(8) manual page. Run as root from the source tree:
#
#   ./install.sh                      build with Bazel (-c opt), install under /usr/local
#   ./install.sh --prefix=/usr        binary in /usr/bin, man page in /usr/share/man
#   ./install.sh --binary=PATH        install an already built binary instead of building
#   ./install.sh --destdir=DIR        stage everything under DIR (packaging, tests)
#
# /etc/default/btrdupd is installed only if it does not exist yet, so a second install
# keeps the volumes you listed there. The unit's ExecStart points at the installed
# binary. Afterwards: edit BTRDUPD_VOLUMES in /etc/default/btrdupd, then
# `systemctl enable --now btrdupd`.
set -euo pipefail

prefix=/usr/local
destdir=
binary=
for arg in "$@"; do
  case "$arg" in
    --prefix=*) prefix="${arg#--prefix=}" ;;
    --destdir=*) destdir="${arg#--destdir=}" ;;
    --binary=*) binary="${arg#--binary=}" ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
case "$prefix" in
  /*) ;;
  *) echo "install.sh: --prefix must be an absolute path, not '$prefix'" >&2; exit 2 ;;
esac

src="$(cd "$(dirname "$0")" && pwd)"
if [ -z "$binary" ]; then
  (cd "$src" && bazel build -c opt //daemon:btrdupd)
  binary="$src/bazel-bin/daemon/btrdupd"
fi
if [ ! -x "$binary" ]; then
  echo "install.sh: $binary is not an executable btrdupd binary" >&2
  exit 1
fi

bin_dir="$destdir$prefix/bin"
man_dir="$destdir$prefix/share/man/man8"
unit_dir="$destdir/etc/systemd/system"
default_dir="$destdir/etc/default"

install -d -m 0755 "$bin_dir" "$man_dir" "$unit_dir" "$default_dir"
install -m 0755 "$binary" "$bin_dir/btrdupd"
install -m 0644 "$src/man/btrdupd.8" "$man_dir/btrdupd.8"
sed "s|^ExecStart=/usr/local/bin/btrdupd |ExecStart=$prefix/bin/btrdupd |" \
  "$src/systemd/btrdupd.service" > "$unit_dir/btrdupd.service.tmp"
chmod 0644 "$unit_dir/btrdupd.service.tmp"
mv "$unit_dir/btrdupd.service.tmp" "$unit_dir/btrdupd.service"
echo "installed $bin_dir/btrdupd"
echo "installed $man_dir/btrdupd.8"
echo "installed $unit_dir/btrdupd.service"
if [ -e "$default_dir/btrdupd" ]; then
  echo "kept      $default_dir/btrdupd (already there)"
else
  install -m 0644 "$src/systemd/btrdupd.default" "$default_dir/btrdupd"
  echo "installed $default_dir/btrdupd (edit BTRDUPD_VOLUMES)"
fi
if [ -z "$destdir" ] && command -v systemctl > /dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
