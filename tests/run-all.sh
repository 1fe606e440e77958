#!/bin/bash
# The whole test suite, as CI runs it: install what is missing, build, run
# every test; then again under ASan+UBSan (LeakSanitizer on); then check the
# formatting.  Usage: tests/run-all.sh   (as root on Debian)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
tests/setup.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DIMGAUDIT_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure -j"$jobs"

# The fuzz targets under libFuzzer, briefly and reproducibly (fixed seed and runs).
contrib/fuzz/run.sh --ci

git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run -Werror
echo "formatting: ok"
