#!/usr/bin/env bash
# Builds dsv2-chat (Release) and starts it. Extra arguments go to dsv2-chat (e.g. --model DIR).
# Without a display it starts a virtual one (Xvfb) so the app still runs.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

BUILD_DIR=${DSV2_APP_BUILD_DIR:-build/release}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSV2_TESTS=OFF
cmake --build "$BUILD_DIR" -j "${DSV2_JOBS:-$(nproc)}" --target dsv2-chat dsv2

APP="$BUILD_DIR/app/dsv2-chat"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ]; then
  echo "run-app: no display found; starting dsv2-chat under Xvfb (xvfb-run)"
  exec xvfb-run -a -s "-screen 0 1280x800x24" "$APP" "$@"
fi
exec "$APP" "$@"
