#!/usr/bin/env bash
# The GPU checks, on a machine with an NVIDIA GPU and the binaries that
# scripts/gpu-build.sh made (no cargo needed there):
#
#   scripts/gpu-device-check.sh [BIN_DIR] [RESULTS_DIR] [SECONDS]
#
# For 2KiB and 8MiB: generates test parameters, then `kiln bench --phases
# pc2,c2 --compare-cpu` builds tree_c / tree_r_last on the GPU and again on
# the CPU (the files must be equal byte for byte), proves C2 on the GPU and
# on the CPU from one seed (the proofs must be equal) and verifies the GPU's
# proof with the CPU verifier. Then a 2KiB `kiln seal all` with C2 on the
# GPU, `kiln-worker info` (what a worker advertises), and, while SECONDS
# (default 480) last, the 512MiB trees. Results: JSON and logs in RESULTS_DIR.
# SIZES (default "2KiB 8MiB") picks the sizes; parameters already in
# $XDG_CACHE_HOME/kiln/params are used as they are.
set -uo pipefail
BIN=$(realpath "${1:-target/gpu}")
OUT=$(realpath -m "${2:-gpu-results}")
BUDGET=${3:-480}
START=$SECONDS
mkdir -p "$OUT"
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/kiln-gpu-cache} RUST_LOG=${RUST_LOG:-info}
K=$BIN/kiln
left() { echo $((BUDGET - (SECONDS - START))); }
step() { echo "== $* ($((SECONDS - START)) s)" | tee -a "$OUT/summary.txt"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/summary.txt"
"$K" --version | tee -a "$OUT/summary.txt"
step "worker advertises"
"$BIN/kiln-worker" info > "$OUT/worker-info.txt" 2>&1
"$BIN/kiln-worker" --no-gpu info > "$OUT/worker-info-no-gpu.txt" 2>&1
grep -h gpus "$OUT"/worker-info*.txt | tee -a "$OUT/summary.txt"

for size in ${SIZES:-2KiB 8MiB}; do
    step "params $size"
    if ! "$K" params verify --sector-size $size > /dev/null 2>&1; then
        "$K" params generate --sector-size $size > "$OUT/params-$size.log" 2>&1 \
            || { tail "$OUT/params-$size.log"; exit 1; }
        tail -1 "$OUT/params-$size.log" >> "$OUT/summary.txt"
    fi
    step "bench $size"
    "$K" bench --sector-size $size --phases pc2,c2 --compare-cpu --json > "$OUT/bench-$size.json" \
        2> "$OUT/bench-$size.log" || { tail -20 "$OUT/bench-$size.log"; exit 1; }
    python3 - "$OUT/bench-$size.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
b = json.load(open(sys.argv[1]))
for p in b["phases"]:
    extra = {k: p[k] for k in ("on", "tree_c_seconds", "tree_r_last_seconds", "tree_files_equal_to_gpu", "proof_equal_to_gpu") if k in p}
    print(f'{b["sector_size"]:>7} {p["phase"]:<8} {p["seconds"]:9.3f} s  {extra}')
PY
done

step "seal all 2KiB"
"$K" seal all --sector-size 2KiB --miner-id 1000 --sector-id 7 --ticket "$(printf '02%.0s' {1..32})" \
    --seed "$(printf '03%.0s' {1..32})" --dir "$XDG_CACHE_HOME/seal-2KiB" --json > "$OUT/seal-2KiB.json" \
    2> "$OUT/seal-2KiB.log" || { tail -20 "$OUT/seal-2KiB.log"; exit 1; }
grep -o '"verified": [a-z]*' "$OUT/seal-2KiB.json" | tee -a "$OUT/summary.txt"
grep -o 'C2 on the [A-Z]*.*' "$OUT/seal-2KiB.log" | head -1 | tee -a "$OUT/summary.txt"

if [ "$(left)" -gt 200 ]; then
    step "bench 512MiB trees"
    timeout $(($(left) - 20)) "$K" bench --sector-size 512MiB --phases pc2 --compare-cpu --json \
        > "$OUT/bench-512MiB.json" 2> "$OUT/bench-512MiB.log" \
        && python3 -c 'import json,sys; [print("512MiB", p["phase"], round(p["seconds"],3), p.get("on"), p.get("tree_files_equal_to_gpu")) for p in json.load(open(sys.argv[1]))["phases"]]' \
            "$OUT/bench-512MiB.json" | tee -a "$OUT/summary.txt" \
        || echo "512MiB not finished in time" | tee -a "$OUT/summary.txt"
fi
step "done"
