#!/usr/bin/env bash
# Builds dsv2-chat and runs the whole test suite (the README's test command; CI runs exactly this).
# One build, instrumented with AddressSanitizer + UndefinedBehaviorSanitizer, so the suite proves
# itself clean under both every time. GPU tests are skipped (with a reason) where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

BUILD_DIR=${DSV2_TEST_BUILD_DIR:-build/test}
JOBS=${DSV2_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSV2_SANITIZE=ON -DDSV2_WERROR=ON
cmake --build "$BUILD_DIR" -j "$JOBS"

# CUDA's runtime needs the shadow gap unprotected under ASan; leak reports from system libraries
# (fontconfig, the Qt platform plugin) are suppressed by scripts/lsan.supp, ours are not.
export ASAN_OPTIONS="protect_shadow_gap=0:detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export QT_QPA_PLATFORM=offscreen
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS" --timeout 900

# The Debian package (docs/packaging.md): a second build, Release without sanitizers or tests, made
# into a .deb that lintian and the validators check, then installed into a clean Debian 12 chroot
# where dsv2 and dsv2-chat must run. DSV2_SKIP_PACKAGE=1 skips it (a quick local run; CI never does).
cd "$OLDPWD"
if [ "${DSV2_SKIP_PACKAGE:-0}" = 1 ]; then
  echo "run-tests: DSV2_SKIP_PACKAGE=1: the Debian package is not built or tested"
else
  ./scripts/package-deb.sh          # makes build/package/dsv2-chat_*.deb
  ./scripts/test-package.sh         # installs that one
fi
