#!/usr/bin/env bash
# Model load speed against the disk's sequential read speed (issue 9: "model load of a 31 GB folder at
# >= 80 % of the disk's sequential read speed"), on the single-GPU machine, as the extra step of
# scripts/device_check.sh (which builds $BUILD/app/dsv2 first):
#
#   DSV2_DEVICE_TESTS=0 DSV2_DEVICE_EXTRA="bash scripts/load_bench.sh" bash scripts/device_check.sh
#
# Steps, each under `timeout`, all inside DSV2_LOAD_BUDGET seconds (default 240, cut to what is left
# of device_check's call):
#   1. write a DeepSeek-V2-Lite-shaped folder (tools/bench/make_load_folder.py: hub layout, 7 shards of
#      ~4.5 GB + index, config.json = tests/engine/cuda/configs/deepseek-v2-lite.json, the DeepSeek
#      tokenizer) to the disk (DSV2_LOAD_DIR, default /var/tmp/dsv2-load-lite; refused on tmpfs), then
#      sync. The weights repeat 4 distinct random 64 MiB blocks: fine for a load benchmark (the
#      disk and the loader do not look at values), and written in seconds instead of minutes;
#   2. drop the page cache (sync; echo 3 > /proc/sys/vm/drop_caches, reported if refused; the
#      folder's pages are also evicted with posix_fadvise(DONTNEED) and `fincore` shows what stayed);
#   3. the disk: `dd bs=16M iflag=direct` over one shard (THE sequential read speed the target is
#      measured against), buffered `dd` over another, and 4 parallel direct readers (1 GiB each);
#   4. drop the cache again, then `dsv2 bench --model DIR --backend cuda --prompt-len 16
#      --decode-tokens 4 --json`: load = load_s (folder open, mmap) + backend_init_s (upload through
#      the page cache + CUDA init) -> GB/s of the folder's weight bytes, and its ratio to dd direct;
#   5. the same load again with the folder in the page cache (what is not the disk: CUDA context,
#      pinned staging, host memcpy), and with DSV2_LOAD_CAT=1 a buffered `cat` of the whole folder.
# Prints a table; writes $OUT/load_bench.json (+ load_cold.json, load_warm.json: dsv2 bench's JSON).
# The folder is removed at the end (DSV2_LOAD_KEEP=1 keeps it).
# Expected: ~15 s to write 31 GB into the page cache, then sync at the disk's write speed; the reads
# ~3-5 s each at 1-3 GB/s; the loads 10-30 s: about 2 minutes on a disk of ~2 GB/s.
set -uo pipefail
BUILD=${BUILD:-build-device}
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
CFG=${DSV2_LOAD_CONFIG:-tests/engine/cuda/configs/deepseek-v2-lite.json}  # another config: a local check
DIR=${DSV2_LOAD_DIR:-/var/tmp/dsv2-load-lite}
DSV2=$BUILD/app/dsv2
T0=$SECONDS

# The time this script may take: DSV2_LOAD_BUDGET, cut to what is left of device_check's call (the
# ancestor process running device_check.sh started the call's clock; DSV2_CALL_LIMIT as there).
caller_left() {
    local pid=$$ limit=${DSV2_CALL_LIMIT:-600} up
    while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "device_check.sh"; then
            echo $((limit - 25 - $(ps -o etimes= -p "$pid" | tr -d ' '))); return
        fi
        up=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')
        pid=$up
    done
}
BUDGET=${DSV2_LOAD_BUDGET:-240}
c=$(caller_left)
if [ -n "$c" ] && [ "$c" -lt "$BUDGET" ]; then BUDGET=$c; fi
echo "== load_bench: budget ${BUDGET} s"
left() { echo $((BUDGET - (SECONDS - T0))); }
lim() {  # lim WANT [RESERVE]: WANT seconds, or what is left minus RESERVE (kept for later steps); >= 5
    local l=$(( $(left) - ${2:-10} ))
    [ "$l" -lt "$1" ] || l=$1
    [ "$l" -ge 5 ] || l=5
    echo "$l"
}

declare -a ROWS   # label|bytes|seconds|note
NOTES=()
row() { ROWS+=("$1|$2|$3|$4"); }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }

DROP="not tried"
resident() {  # bytes of the folder's shards in the page cache ("n/a" without fincore)
    if command -v fincore >/dev/null 2>&1; then
        fincore -b -n -o RES "$DIR"/*.safetensors 2>/dev/null | awk '{s += $1} END {print s + 0}'
    else echo "n/a"; fi
}
drop_caches() {
    timeout 60 sync
    if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then DROP=ok; else DROP="refused (echo 3 > /proc/sys/vm/drop_caches failed)"; fi
    python3 - "$DIR" <<'PY'
import os, sys
d = sys.argv[1]
for n in os.listdir(d):
    fd = os.open(os.path.join(d, n), os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
    local r; r=$(resident)
    echo "   page cache dropped: $DROP; folder bytes still resident: $r"
    if [ "$r" != "n/a" ] && [ "$r" -gt 1000000000 ]; then NOTES+=("after a drop, $r bytes of the folder stayed in the page cache: the 'cold' numbers are not cold"); fi
}

# dd_read LABEL LIMIT ARGS...: one dd, its bytes and seconds as dd reports them.
dd_read() {
    local label=$1 limit=$2; shift 2
    local out
    out=$(timeout "$limit" dd of=/dev/null bs=16M "$@" 2>&1 | tail -1)
    echo "   $label: $out" >&2
    python3 - "$out" <<'PY'
import re, sys
m = re.match(r"(\d+) bytes .* copied, ([\d.,]+) s", sys.argv[1])
print(f"{m.group(1)} {m.group(2).replace(',', '.')}" if m else "0 0")
PY
}

cleanup() { [ "${DSV2_LOAD_KEEP:-0}" = 1 ] || rm -rf "$DIR"; }
trap cleanup EXIT

# ---- where: a disk, with room
parent=$(dirname "$DIR")
mkdir -p "$parent"
fstype=$(df -PT "$parent" | awk 'NR == 2 {print $2}')
source=$(findmnt -no SOURCE -T "$parent" 2>/dev/null || echo "?")
avail=$(df -PB1 "$parent" | awk 'NR == 2 {print $4}')
echo "   folder $DIR on $source ($fstype), $((avail / 1000000000)) GB free"
lsblk -d -o NAME,ROTA,SIZE,MODEL 2>/dev/null | head -8
disk=$(lsblk -no PKNAME "$source" 2>/dev/null | head -1)
[ -n "$disk" ] && [ -r "/sys/block/$disk/queue/read_ahead_kb" ] &&
    echo "   /dev/$disk: read_ahead_kb $(cat "/sys/block/$disk/queue/read_ahead_kb"), scheduler $(cat "/sys/block/$disk/queue/scheduler" 2>/dev/null)"
case "$fstype" in tmpfs|ramfs) echo "FAILED: $parent is $fstype (memory), not a disk: set DSV2_LOAD_DIR"; exit 1;; esac
[ -x "$DSV2" ] || { echo "FAILED: no $DSV2 (build first: this is device_check.sh's extra step)"; exit 1; }
rm -rf "$DIR"
need=$(python3 tools/bench/make_load_folder.py --config "$CFG" --out "$DIR" --dry-run | awk 'NR == 1 {printf "%d", ($3 + 1) * 1e9}')
[ "$avail" -gt "$need" ] || { echo "FAILED: $avail bytes free under $parent, the folder needs $need"; exit 1; }

# ---- 1. write
echo "== 1. write the folder"
t=$(now)
timeout "$(lim 150 90)" python3 tools/bench/make_load_folder.py --config "$CFG" --out "$DIR" || {
    echo "FAILED: writing the folder"; exit 1; }
t1=$(now)
timeout "$(lim 90 60)" sync || NOTES+=("sync after the write timed out")
t2=$(now)
BYTES=$(python3 -c "import json; print(json.load(open('$DIR/model.safetensors.index.json'))['metadata']['total_size'])")
FILES=$(du -cb "$DIR"/*.safetensors | tail -1 | cut -f1)
SHARDS=($(ls "$DIR"/model-*.safetensors))
row "write folder (page cache)" "$FILES" "$(secs "$t" "$t1")" "python, ${#SHARDS[@]} shards in parallel"
row "write folder + sync" "$FILES" "$(secs "$t" "$t2")" "sync $(secs "$t1" "$t2") s"

# ---- 2./3. the disk
echo "== 2. the disk's sequential read"
drop_caches
read -r b s < <(dd_read "dd direct ${SHARDS[0]##*/}" "$(lim 40 60)" if="${SHARDS[0]}" iflag=direct)
row "disk: dd direct, 1 shard" "$b" "$s" "bs=16M iflag=direct: THE reference"
DD_BYTES=$b DD_S=$s
drop_caches
other=${SHARDS[$(( ${#SHARDS[@]} > 1 ? 1 : 0 ))]}  # another shard than dd direct's, where there is one
read -r b s < <(dd_read "dd buffered ${other##*/}" "$(lim 40 60)" if="$other")
row "disk: dd buffered, 1 shard" "$b" "$s" "bs=16M, page cache, readahead"
if [ "$DD_S" = 0 ] || [ "$DD_BYTES" = 0 ]; then  # O_DIRECT refused (some overlay filesystems): buffered instead
    NOTES+=("dd iflag=direct failed on this filesystem: the reference is the buffered dd")
    DD_BYTES=$b DD_S=$s
fi
if [ "$(left)" -gt 90 ] && [ "${#SHARDS[@]}" -ge 6 ]; then
    drop_caches
    t=$(now)
    for i in 2 3 4 5; do timeout "$(lim 30 60)" dd if="${SHARDS[$i]}" of=/dev/null bs=16M count=64 iflag=direct 2>/dev/null & done
    wait
    row "disk: dd direct, 4 readers" "$((4 * 64 * 16 * 1048576))" "$(secs "$t" "$(now)")" "1 GiB each, in parallel"
fi

# ---- 4./5. the engine
load_run() {  # load_run NAME LIMIT: dsv2 bench on the folder, its load = load_s + backend_init_s
    local name=$1 limit=$2 t
    t=$(now)
    timeout "$limit" "$DSV2" bench --model "$DIR" --backend cuda --prompt-len 16 --decode-tokens 4 --json \
        >"$OUT/load_$name.json" 2>"/tmp/load_$name.err"
    local rc=$? wall; wall=$(secs "$t" "$(now)")
    if [ "$rc" != 0 ]; then
        { echo "   dsv2 bench ($name) failed, rc $rc$([ "$rc" = 124 ] && echo ", timed out after $limit s"):"
          tail -5 "/tmp/load_$name.err"; } >&2
        return "$rc"
    fi
    python3 - "$OUT/load_$name.json" "$wall" <<'PY'
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])
print(f"{j['load_s'] + j['backend_init_s']:.3f} {j['load_s']:.3f} {j['backend_init_s']:.3f} {sys.argv[2]}")
PY
}
echo "== 3. dsv2 load, cold page cache"
drop_caches
COLD_S=""
status=0
if r=$(load_run cold "$(lim 120 25)"); then
    read -r COLD_S l i w <<<"$r"
    row "dsv2 load, cold" "$BYTES" "$COLD_S" "open $l s + backend init $i s (bench wall $w s)"
else rc=$?; status=1; NOTES+=("dsv2 bench (cold) failed: rc $rc (124: timed out; $OUT/load_cold.json, /tmp/load_cold.err)"); fi
if [ "$(left)" -gt 40 ]; then
    echo "== 4. dsv2 load, folder in the page cache"
    if r=$(load_run warm "$(lim 60 10)"); then
        read -r s l i w <<<"$r"
        row "dsv2 load, warm page cache" "$BYTES" "$s" "open $l s + backend init $i s (not the disk)"
    else NOTES+=("dsv2 bench (warm) failed: rc $?"); fi
else NOTES+=("warm load skipped: no time left"); fi
if [ "${DSV2_LOAD_CAT:-0}" = 1 ] && [ "$(left)" -gt 60 ]; then
    drop_caches
    t=$(now)
    timeout "$(lim 60 5)" cat "${SHARDS[@]}" >/dev/null && row "cat whole folder, buffered" "$FILES" "$(secs "$t" "$(now)")" "one reader, page cache"
fi

# ---- table
{
python3 - "$OUT/load_bench.json" "$DD_BYTES" "$DD_S" "${COLD_S:-0}" "$BYTES" "$source ($fstype)" "$DROP" "$(basename "$CFG" .json)" "${ROWS[@]}" <<'PY'
import json, sys
out, dd_b, dd_s, cold_s, nbytes, where, drop, cfg = sys.argv[1:9]
rows = [r.split("|") for r in sys.argv[9:]]
dd = int(dd_b) / float(dd_s) / 1e9 if float(dd_s) > 0 else 0
print(f"\nload benchmark: {cfg} shape, {int(nbytes) / 1e9:.2f} GB of weights, on {where}; page cache drop: {drop}")
print(f"{'step':30s} {'GB':>7s} {'s':>8s} {'GB/s':>7s} {'vs dd':>6s}  note")
res = {"config": cfg, "where": where, "drop_caches": drop, "weight_bytes": int(nbytes), "rows": []}
for label, b, s, note in rows:
    try:
        b, s = int(b), float(s)
    except ValueError:
        print(f"{label:30s} {'-':>7s} {'-':>8s} {'-':>7s} {'-':>6s}  no result")
        continue
    gbs = b / s / 1e9 if s > 0 else 0
    rel = f"{100 * gbs / dd:5.0f}%" if dd and gbs else "     -"
    print(f"{label:30s} {b / 1e9:7.2f} {s:8.2f} {gbs:7.2f} {rel}  {note}")
    res["rows"].append({"step": label, "bytes": b, "seconds": s, "gb_per_s": gbs, "note": note})
cold = int(nbytes) / float(cold_s) / 1e9 if float(cold_s) > 0 else 0
res["disk_direct_gb_per_s"], res["load_cold_gb_per_s"] = dd, cold
if dd and cold:
    res["load_vs_disk"] = cold / dd
    print(f"\ntarget (issue 9): cold load >= 80 % of the disk's sequential read: {cold:.2f} / {dd:.2f} GB/s = "
          f"{100 * cold / dd:.0f} % -> {'MET' if cold >= 0.8 * dd else 'NOT MET'}")
json.dump(res, open(out, "w"), indent=2)
PY
for n in "${NOTES[@]}"; do echo "note: $n"; done
echo "load_bench total $((SECONDS - T0)) s"
}
exit $status
