#!/bin/bash
# The whole test suite, as CI runs it: install what is missing, build, run
# every test; then again under ASan+UBSan (LeakSanitizer on); the scan tests
# under ThreadSanitizer; the fuzz targets; then check the formatting.  Usage: tests/run-all.sh   (as root on Debian)
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

# The scan's threads (workers, the writer, the layer cache) and push's COPY
# sender thread (schema/pg_copy.c) under ThreadSanitizer.
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DIMGAUDIT_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	ctest --test-dir build-tsan --output-on-failure -j"$jobs" -R 'test_scan_|test_compose|test_store|test_fleet_pg'

# The fuzz targets under libFuzzer, briefly and reproducibly (fixed seed and runs).
contrib/fuzz/run.sh --ci

git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run -Werror
echo "formatting: ok"
