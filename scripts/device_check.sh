#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repo root, in ONE call of at most 10 minutes:
# builds the engine, CLI and tests without Qt, prints the GPUs and `dsv2 --version`, runs the
# gpu-labelled tests, then the rest of the ctest suite (the two together are the whole suite), then
# compute-sanitizer (memcheck + racecheck) over the kernel suites at small sizes, and leaves logs
# under $OUT. Needs .carry/include (scripts/prepare-device-carry.sh) named in the call's `carry`.
# Prints a short table last.
#
#   device run: bash scripts/device_check.sh            (carry: [".carry"])
#   knobs:      DSV2_SANITIZE_KERNELS=0     skip compute-sanitizer
#               DSV2_DEVICE_EXTRA="cmd"     one more step (fixture generation, benchmarks)
#               DSV2_DEVICE_TESTS=0         build + version + the extra step only (a second call
#                                           that reuses a warm machine's build)
#   HF check:   DSV2_DEVICE_TESTS=0 DSV2_DEVICE_EXTRA="python3 tests/engine/cuda/hf_lite_check.py \
#                   --dsv2 build-device/app/dsv2" bash scripts/device_check.sh
#               DSV2_BUILD_DIR=dir          build folder (default build-device)
#               DSV2_JOBS=n                 build parallelism (default: all cores)
#               DSV2_BUILD_LIMIT=s          time limit of the build step (default 300)
#
# Every step has its own time limit, so that the table still prints inside the call's 10 minutes;
# logs: $OUT/{gpus.txt,build.log,version.log,gpu_tests.log,other_tests.log,sanitizer.log,summary.txt}
set -uo pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
BUILD=${DSV2_BUILD_DIR:-build-device}
JOBS=${DSV2_JOBS:-$(nproc)}
T0=$SECONDS
declare -a ROWS

step() {  # step NAME LIMIT_SECONDS COMMAND...: runs under `timeout`, logs to $OUT/NAME.log, records the result
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
    if [ "$rc" = 0 ]; then ROWS+=("$name|ok|$((SECONDS - t0))s")
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then ROWS+=("$name|TIMED OUT (${limit}s)|$((SECONDS - t0))s"); tail -30 "$OUT/$name.log"
    else ROWS+=("$name|FAILED (rc $rc)|$((SECONDS - t0))s"); tail -40 "$OUT/$name.log"; fi
    return "$rc"
}

skip() { ROWS+=("$1|skipped ($2)|-"); }

generator="Unix Makefiles"
command -v ninja >/dev/null 2>&1 && generator=Ninja
if [ -z "${CUDACXX:-}" ]; then
    if command -v nvcc >/dev/null 2>&1; then export CUDACXX=$(command -v nvcc); else export CUDACXX=/usr/local/cuda/bin/nvcc; fi
fi
export PATH=$PATH:/usr/local/cuda/bin

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv; } 2>&1 | tee "$OUT/gpus.txt"

build() {
    cmake -S . -B "$BUILD" -G "$generator" -DCMAKE_BUILD_TYPE=Release -DDSV2_UI=OFF -DDSV2_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DDSV2_EXTRA_INCLUDE_DIR="$PWD/.carry/include" &&
        cmake --build "$BUILD" -j "$JOBS"
}
export BUILD JOBS generator
export -f build
built=1
step build "${DSV2_BUILD_LIMIT:-300}" bash -c build || built=0

if [ "$built" = 1 ]; then
    step version 30 "$BUILD/app/dsv2" --version
    cat "$OUT/version.log"
  if [ "${DSV2_DEVICE_TESTS:-1}" = 1 ]; then
    step gpu_tests 120 ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 100
    step other_tests 120 ctest --test-dir "$BUILD" -LE gpu --output-on-failure --timeout 110 -j 8
    if [ "${DSV2_SANITIZE_KERNELS:-1}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
        sanitize() {
            local status=0 tool suite
            export DSV2_CUDA_TEST_SMALL=1  # the suites skip their 8K-context cases
            for tool in memcheck racecheck; do
                for suite in cuda_kernels_test cuda_mla_test cuda_moe_test cuda_cache_test; do
                    echo "=== compute-sanitizer --tool $tool $suite"
                    compute-sanitizer --tool "$tool" --error-exitcode 99 --print-limit 20 \
                        "$BUILD/tests/engine/$suite" --no-intro 2>&1 | grep -vE '^\[seed\]' | tail -15
                    local rc=${PIPESTATUS[0]}
                    echo "=== $tool $suite: rc $rc"
                    [ "$rc" = 0 ] || status=1
                done
            done
            return $status
        }
        export -f sanitize
        remaining=$((570 - (SECONDS - T0)))
        if [ "$remaining" -gt 60 ]; then step sanitizer "$remaining" bash -c sanitize
        else skip sanitizer "no time left"; fi
    else
        skip sanitizer "off or compute-sanitizer missing"
    fi
  else
    skip tests "DSV2_DEVICE_TESTS=0"
  fi
    if [ -n "${DSV2_DEVICE_EXTRA:-}" ]; then
        remaining=$((580 - (SECONDS - T0)))
        export PYTHONUNBUFFERED=1
        step extra "$remaining" bash -c "$DSV2_DEVICE_EXTRA"
    fi
else
    skip version "build failed"
    skip gpu_tests "build failed"
fi

{
    echo "device_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    head -1 "$OUT/gpus.txt" 2>/dev/null
    grep -hE "tests passed|tests failed|Not Run|\*\*\*Skipped|\*\*\*Failed|Failed  |Timeout" \
        "$OUT/gpu_tests.log" "$OUT/other_tests.log" 2>/dev/null
    grep -h "^=== .*: rc" "$OUT/sanitizer.log" 2>/dev/null
    grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.log" 2>/dev/null | sort | uniq -c
    printf '\n%-12s %-22s %s\n' step result time
    for row in "${ROWS[@]}"; do IFS='|' read -r a b c <<<"$row"; printf '%-12s %-22s %s\n' "$a" "$b" "$c"; done
    echo "total $((SECONDS - T0))s"
} | tee "$OUT/summary.txt"
