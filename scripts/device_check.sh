#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repo root, in ONE call of at most 10 minutes:
# builds the engine, CLI and tests without Qt (while HF fixtures are generated alongside, if asked),
# prints the GPUs and `dsv2 --version`, runs the gpu-labelled tests, then the rest of the ctest
# suite (the two together are the whole suite), compares `dsv2 generate` greedy tokens between the
# cpu and cuda backends, then compute-sanitizer (memcheck + racecheck) over the kernel suites at
# small sizes, and leaves logs under $OUT (8 files at most: the device tool brings back 8).
# Needs .carry/include (scripts/prepare-device-carry.sh) named in the call's `carry`.
# Prints a short table last.
#
#   device run: bash scripts/device_check.sh            (carry: [".carry"])
#   knobs:      DSV2_SANITIZE_KERNELS=0     skip compute-sanitizer
#               DSV2_MAKE_FIXTURES=1        run tools/fixtures/make_fixtures.py during the build, put
#                                           its folders under tests/data/fixtures/ before the tests
#                                           and bring them back as $OUT/fixtures.tar.gz
#               DSV2_GENERATE_CHECK=0       skip the cpu-vs-cuda `dsv2 generate` comparison
#               DSV2_DEVICE_EXTRA="cmd"     one more step (benchmarks, the HF check)
#               DSV2_GPU_TESTS=regex        only the gpu suites matching it (e.g. cuda_multi_gpu_test)
#               DSV2_SANITIZE_LIMIT=s       at most s seconds of compute-sanitizer (leaves time for the extra step)
#               DSV2_SANITIZE_SUITES="a b"  only these suites under compute-sanitizer
#               DSV2_SANITIZE_TOOLS="t"     only these tools (default "memcheck racecheck")
#               DSV2_SANITIZE_CASES="pat"   only the doctest cases matching pat (e.g. "*decode*")
#               DSV2_GPU_REPEAT=n           each gpu suite up to n times, fresh seeds (flake hunt)
#               DSV2_OTHER_TESTS=0          skip the non-gpu suites
#               DSV2_DEVICE_TESTS=0         build + version + the extra step only (a second call
#                                           that reuses a warm machine's build)
#   HF check:   DSV2_DEVICE_TESTS=0 DSV2_DEVICE_EXTRA="python3 tests/engine/cuda/hf_lite_check.py \
#                   --dsv2 build-device/app/dsv2" bash scripts/device_check.sh
#               DSV2_BUILD_DIR=dir          build folder (default build-device)
#               DSV2_JOBS=n                 build parallelism (default: all cores)
#               DSV2_BUILD_LIMIT=s          time limit of the build step (default 300)
#               DSV2_CALL_LIMIT=s           the call's own limit (default 600): the sanitizer and the
#                                           extra step are cut to end inside it
#
# Every step has its own time limit, so that the table still prints inside the call's 10 minutes;
# logs: $OUT/{build.log (GPUs, build, version, fixture generation), gpu_tests.log, other_tests.log,
# generate.log, sanitizer.log, extra.log, summary.txt} and fixtures.tar.gz.
set -uo pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
BUILD=${DSV2_BUILD_DIR:-build-device}
JOBS=${DSV2_JOBS:-$(nproc)}
T0=$SECONDS
CALL_LIMIT=${DSV2_CALL_LIMIT:-600}
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

GPUS=/tmp/dsv2-gpus.txt
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv; } 2>&1 | tee "$GPUS"

# HF fixtures (CPU-only torch work) alongside the build.
FIXTURES_PID=
if [ "${DSV2_MAKE_FIXTURES:-0}" = 1 ]; then
    rm -rf /tmp/fx
    ( timeout --kill-after=10 240 python3 tools/fixtures/make_fixtures.py --out /tmp/fx >/tmp/dsv2-fixtures.log 2>&1;
      echo "rc $?" >>/tmp/dsv2-fixtures.log ) &
    FIXTURES_PID=$!
fi

# NCCL (several GPUs): the headers at build time, libnccl.so.2 at run time (dlopen'ed). The GPU
# machine has them in PyTorch's nvidia-nccl wheel. NVLink multicast stays off (KINDS.md).
export NCCL_NVLS_ENABLE=0
NCCL_DIR=$(python3 -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
NCCL_INCLUDE=
if [ -n "$NCCL_DIR" ] && [ -f "$NCCL_DIR/include/nccl.h" ]; then
    NCCL_INCLUDE=$NCCL_DIR/include
    export LD_LIBRARY_PATH=$NCCL_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
export NCCL_INCLUDE

build() {
    cmake -S . -B "$BUILD" -G "$generator" -DCMAKE_BUILD_TYPE=Release -DDSV2_UI=OFF -DDSV2_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DDSV2_EXTRA_INCLUDE_DIR="$PWD/.carry/include" \
        -DDSV2_NCCL_INCLUDE_DIR="$NCCL_INCLUDE" &&
        cmake --build "$BUILD" -j "$JOBS"
}
export BUILD JOBS generator
export -f build
built=1
step build "${DSV2_BUILD_LIMIT:-300}" bash -c build || built=0

{ echo "== GPUs"; cat "$GPUS"; } >>"$OUT/build.log"

if [ -n "$FIXTURES_PID" ]; then  # the generator's folders go under tests/data/fixtures/ and to $OUT
    t0=$SECONDS
    wait "$FIXTURES_PID"
    { echo "== fixtures (tools/fixtures/make_fixtures.py)"; cat /tmp/dsv2-fixtures.log; } >>"$OUT/build.log"
    if grep -q "^rc 0$" /tmp/dsv2-fixtures.log; then
        mkdir -p tests/data/fixtures
        cp -r /tmp/fx/. tests/data/fixtures/
        tar czf "$OUT/fixtures.tar.gz" -C /tmp/fx .
        ls -la /tmp/fx/* >>"$OUT/build.log"
        ROWS+=("fixtures|ok|$((SECONDS - t0))s after the build")
    else
        tail -20 /tmp/dsv2-fixtures.log
        ROWS+=("fixtures|FAILED|$((SECONDS - t0))s after the build")
    fi
fi

# cpu vs cuda greedy tokens on tiny-lite and every fixture folder. Where they part, the cpu's own
# logits at that step (dsv2 logits) must make it a near-tie: top choice minus the cuda choice
# within 5e-2 of max|logit|, the bf16 budget of cuda_backend_test; later tokens are not compared.
generate_check() {
    local status=0 dir
    for dir in tests/data/tiny-lite tests/data/fixtures/*/; do
        [ -f "$dir/config.json" ] || continue
        for backend in cpu cuda; do
            "$BUILD/app/dsv2" generate --model "$dir" --backend "$backend" --chat \
                --prompt "Hello! What is a mixture of experts?" --greedy --ignore-eos -n 32 \
                --json >"/tmp/gen-$backend.json" 2>"/tmp/gen-$backend.err" || {
                echo "$dir $backend: FAILED"; cat "/tmp/gen-$backend.err"; status=1; continue 2; }
        done
        DSV2="$BUILD/app/dsv2" python3 - "$dir" <<'PY' || status=1
import json, os, struct, subprocess, sys
def load(p):
    t = open(p).read()
    return json.loads(t[t.index("{"):])
d = sys.argv[1]
cpu, cuda = load("/tmp/gen-cpu.json"), load("/tmp/gen-cuda.json")
a, b = cpu["tokens"], cuda["tokens"]
print(f"{d}: cpu  {a}\n{d}: cuda {b}")
if a == b:
    print(f"{d}: SAME {len(a)} greedy tokens"); sys.exit(0)
i = next(k for k in range(min(len(a), len(b))) if a[k] != b[k])
ids = list(cpu["prompt_tokens"]) + a[:i]
subprocess.run([os.environ["DSV2"], "logits", "--model", d, "--backend", "cpu", "--tokens", ",".join(map(str, ids)),
                "--out", "/tmp/gen-logits.f32"], check=True, capture_output=True)
raw = open("/tmp/gen-logits.f32", "rb").read()
n = len(raw) // 4 // len(ids)
row = struct.unpack(f"<{n}f", raw[-4 * n:])
gap = (row[a[i]] - row[b[i]]) / max(abs(v) for v in row)
verdict = "a near-tie" if gap <= 5e-2 else "NOT a near-tie"
print(f"{d}: {'SAME' if gap <= 5e-2 else 'DIFFER'} for {i} tokens, then {verdict}: cpu logits at step {i}: "
      f"(top {a[i]} - cuda's {b[i]}) / max|logit| = {gap:.3g}")
sys.exit(0 if gap <= 5e-2 else 1)
PY
    done
    return $status
}
export -f generate_check

if [ "$built" = 1 ]; then
    step version 30 "$BUILD/app/dsv2" --version
    cat "$OUT/version.log"; cat "$OUT/version.log" >>"$OUT/build.log"; rm -f "$OUT/version.log"
  if [ "${DSV2_DEVICE_TESTS:-1}" = 1 ]; then
    # -V: the per-sublayer tables. DSV2_GPU_TESTS=regex runs only those gpu suites.
    # DSV2_GPU_REPEAT=n runs each suite up to n times (fresh seeds each time) to catch a
    # seed-dependent failure; the failing run's "[seed]" lines replay it.
    repeat=()
    [ "${DSV2_GPU_REPEAT:-1}" -gt 1 ] && repeat=(--repeat "until-fail:${DSV2_GPU_REPEAT}")
    step gpu_tests 240 ctest --test-dir "$BUILD" -L gpu -R "${DSV2_GPU_TESTS:-.}" -V --timeout 200 "${repeat[@]}"
    if [ "${DSV2_OTHER_TESTS:-1}" = 1 ]; then
        step other_tests 150 ctest --test-dir "$BUILD" -LE gpu --output-on-failure --timeout 140 -j 8
    else skip other_tests "DSV2_OTHER_TESTS=0"; fi
    if [ "${DSV2_GENERATE_CHECK:-1}" = 1 ]; then step generate 120 bash -c generate_check; fi
    if [ "${DSV2_SANITIZE_KERNELS:-1}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
        # racecheck: hazards inside cuBLAS's own kernels (nvjet_*, *gemm*, cutlass, xmma) are
        # reported and counted but expected: racecheck does not model the asynchronous
        # (TMA/mbarrier) synchronisation of Hopper GEMM kernels, and the code is NVIDIA's. A
        # hazard in any other kernel (ours) fails the step.
        sanitize() {
            local status=0 tool suite log
            export DSV2_CUDA_TEST_SMALL=1  # the suites skip their 8K-context cases
            for tool in ${DSV2_SANITIZE_TOOLS:-memcheck racecheck}; do
                local suites="cuda_kernels_test cuda_mla_test cuda_moe_test cuda_cache_test"
                # memcheck also walks the backend's own paths (paged cache, chunks, both MLA forms).
                [ "$tool" = memcheck ] && suites="$suites cuda_backend_test"
                suites=${DSV2_SANITIZE_SUITES:-$suites}
                for suite in $suites; do
                    local filter=()
                    # The backend suite: the paths the fixtures test does not add much to.
                    [ "$suite" = cuda_backend_test ] && filter=(--test-case="*random tokens*,*rewind*,*bad input*")
                    [ -n "${DSV2_SANITIZE_CASES:-}" ] && filter=(--test-case="$DSV2_SANITIZE_CASES")
                    echo "=== compute-sanitizer --tool $tool $suite"
                    log=/tmp/dsv2-san-$tool-$suite.log
                    compute-sanitizer --tool "$tool" --error-exitcode 99 --print-limit 200 \
                        "$BUILD/tests/engine/$suite" --no-intro "${filter[@]}" >"$log" 2>&1
                    local rc=$?
                    grep -vE '^\[seed\]|^sublayer|^(attn|ffn|moe) +L|^logits|^routing:' "$log" | tail -15
                    # A test that fails under the tool (not only a hazard): its case and check.
                    grep -E '^TEST CASE:|^[^ ]*: ERROR:|is NOT correct|values: |logged: |^  [A-Z_]+\(' "$log" | head -40
                    if [ "$tool" = racecheck ] && [ "$rc" = 99 ]; then
                        local ours cublas
                        cublas=$(grep -E "Race reported between" "$log" | grep -cE "nvjet|gemm|cutlass|xmma|cublas")
                        ours=$(grep -E "Race reported between" "$log" | grep -vcE "nvjet|gemm|cutlass|xmma|cublas")
                        echo "=== racecheck $suite: $cublas hazard reports inside cuBLAS kernels (expected), $ours in ours"
                        if [ "$ours" = 0 ] && grep -q "Target application returned an error" "$log"; then rc=1
                        elif [ "$ours" = 0 ]; then rc=0; fi
                    fi
                    echo "=== $tool $suite: rc $rc"
                    [ "$rc" = 0 ] || status=1
                done
            done
            return $status
        }
        export -f sanitize
        remaining=$((CALL_LIMIT - 30 - (SECONDS - T0)))
        [ -n "${DSV2_SANITIZE_LIMIT:-}" ] && [ "$DSV2_SANITIZE_LIMIT" -lt "$remaining" ] && remaining=$DSV2_SANITIZE_LIMIT
        if [ "$remaining" -gt 60 ]; then step sanitizer "$remaining" bash -c sanitize
        else skip sanitizer "no time left"; fi
    else
        skip sanitizer "off or compute-sanitizer missing"
    fi
  else
    skip tests "DSV2_DEVICE_TESTS=0"
  fi
    if [ -n "${DSV2_DEVICE_EXTRA:-}" ]; then
        remaining=$((CALL_LIMIT - 20 - (SECONDS - T0)))
        export PYTHONUNBUFFERED=1
        step extra "$remaining" bash -c "$DSV2_DEVICE_EXTRA"
    fi
else
    skip version "build failed"
    skip gpu_tests "build failed"
fi

{
    commit=$(cat .devtree-commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)
    echo "device_check $(date -u +%FT%TZ) commit $commit"
    head -1 "$GPUS" 2>/dev/null
    grep -hE "tests passed|tests failed|Not Run|\*\*\*Skipped|\*\*\*Failed|Failed  |Timeout" \
        "$OUT/gpu_tests.log" "$OUT/other_tests.log" 2>/dev/null
    grep -hE ": (SAME|DIFFER|FAILED)" "$OUT/generate.log" 2>/dev/null
    grep -h "^=== .*: rc\|^=== racecheck .*cuBLAS" "$OUT/sanitizer.log" 2>/dev/null
    grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.log" 2>/dev/null | sort | uniq -c
    printf '\n%-12s %-22s %s\n' step result time
    for row in "${ROWS[@]}"; do IFS='|' read -r a b c <<<"$row"; printf '%-12s %-22s %s\n' "$a" "$b" "$c"; done
    echo "total $((SECONDS - T0))s"
} | tee "$OUT/summary.txt"

# The device tool brings back only a handful of files from $OUT (more are left out, unread): pack
# everything into one archive (tar xzf results.tgz) unless DSV2_PACK_OUT=0.
if [ "${DSV2_PACK_OUT:-1}" = 1 ]; then
    (cd "$OUT" && mapfile -t files < <(ls -A | grep -vx results.tgz) && [ "${#files[@]}" -gt 0 ] &&
        tar czf results.tgz "${files[@]}" && rm -rf "${files[@]}")
fi
