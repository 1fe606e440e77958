#!/bin/sh
# Install what building and testing imgaudit needs on Debian (run as root).
# Installs only what is missing; safe to run again.
# (prometheus is there for promtool, which checks the metrics files; its own
# service is not needed by any test; duc and ncdu are the peers of
# tests/bench/walk_bench.sh)
set -eu
PKGS="build-essential cmake pkg-config clang clang-format python3 sqlite3 strace
      qemu-utils libarchive-dev libsqlite3-dev zlib1g-dev libzstd-dev libjson-c-dev
      libcmocka-dev libclang-rt-14-dev tar gzip xz-utils zstd bzip2 zip
      python3-jsonschema chromium time groff-base mandoc systemd prometheus
      postgresql libpq-dev duc ncdu bc"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
