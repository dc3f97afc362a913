#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repo root, in ONE call: builds the engine and CLI
# without Qt, prints the GPUs and `dsv2 --version`, runs the gpu-labelled tests and then the whole
# ctest suite, and leaves logs under $OUT. Needs .carry/include (scripts/prepare-device-carry.sh)
# named in the call's `carry` list. Prints a short table last.
#
#   device run: bash scripts/device_check.sh            (carry: [".carry"])
#   extra steps: DSV2_DEVICE_EXTRA="bash tools/fixtures/run_on_device.sh" bash scripts/device_check.sh
set -uo pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
BUILD=build-device
declare -a ROWS

step() {  # step NAME COMMAND...: runs, logs to $OUT/NAME.log, records pass/fail and seconds
    local name=$1; shift
    local t0=$SECONDS
    if "$@" >"$OUT/$name.log" 2>&1; then ROWS+=("$name|ok|$((SECONDS - t0))s")
    else ROWS+=("$name|FAILED (rc $?)|$((SECONDS - t0))s"); tail -40 "$OUT/$name.log"; fi
}

generator="Unix Makefiles"
command -v ninja >/dev/null 2>&1 && generator=Ninja
export CUDACXX=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

nvidia-smi -L | tee "$OUT/gpus.txt"
step configure cmake -S . -B $BUILD -G "$generator" -DCMAKE_BUILD_TYPE=Release -DDSV2_UI=OFF -DDSV2_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DDSV2_EXTRA_INCLUDE_DIR="$PWD/.carry/include"
step build cmake --build $BUILD -j "$(nproc)"
step version $BUILD/app/dsv2 --version
cat "$OUT/version.log"
step gpu_tests ctest --test-dir $BUILD -L gpu --output-on-failure --timeout 300
step all_tests ctest --test-dir $BUILD --output-on-failure --timeout 300 -j 8
if [ -n "${DSV2_DEVICE_EXTRA:-}" ]; then
    step extra bash -c "$DSV2_DEVICE_EXTRA"
fi

grep -E "tests passed|tests failed" "$OUT/gpu_tests.log" "$OUT/all_tests.log" 2>/dev/null
printf '\n%-12s %-16s %s\n' step result time
for row in "${ROWS[@]}"; do IFS='|' read -r a b c <<<"$row"; printf '%-12s %-16s %s\n' "$a" "$b" "$c"; done
