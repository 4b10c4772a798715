#!/usr/bin/env bash
# PC1 throughput side by side: kiln's batch PC1 against the reference prover's best way
# of using the same cores (rust-fil-proofs 19.1 through the harness in
# ../shared/reference, built as its README says), in one run, CC sectors, parent caches warm.
#
#   scripts/side_by_side_batch.sh SIZE BATCH [KILN_BIN]     SIZE = 8MiB | 512MiB
#
# The reference has no batch mode; its best throughput on this machine is the best of
#   A: one sector at a time, multicore SDR with 1 producer (its fastest single sector),
#   B: one single-core PC1 process per core, all at once,
#   C: one multicore (1 producer) PC1 process per core, all at once.
# Kiln labels BATCH sectors together (`kiln bench --phases pc1 --batch BATCH`).
# Prints sectors per hour for each, the ratio, and peak memory. Run nothing else meanwhile.
set -euo pipefail
SIZE=$1
BATCH=$2
KILN=${3:-target/release/kiln}
REFWORK=${REFWORK:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln-reference}
REFBIN=${REFBIN:-$REFWORK/target/release/refharness}
export FIL_PROOFS_PARAMETER_CACHE=$REFWORK/params/ FIL_PROOFS_PARENT_CACHE=$REFWORK/parents RUST_LOG=warn
[ -x "$REFBIN" ] || { echo "no reference harness at $REFBIN: build it (../shared/reference/README.md)" >&2; exit 2; }
CORES=$(nproc)
W=$(mktemp -d "$REFWORK/sbsb-$SIZE-XXXX")
trap 'rm -rf "$W"' EXIT
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

for i in $(seq 1 "$CORES"); do "$REFBIN" phase "$SIZE" cc "$W/ref$i" addpiece >/dev/null; done
# Warm-up: builds or loads the reference's parent cache.
FIL_PROOFS_USE_MULTICORE_SDR=false "$REFBIN" phase "$SIZE" cc "$W/ref1" pc1 >/dev/null

# A: one sector, multicore, 1 producer.
FIL_PROOFS_USE_MULTICORE_SDR=true FIL_PROOFS_MULTICORE_SDR_PRODUCERS=1 "$REFBIN" phase "$SIZE" cc "$W/ref1" pc1 > "$W/a.json"
a=$(j "['wall_s']" < "$W/a.json"); a_rss=$(j "['maxrss_kib']" < "$W/a.json")
# B and C: one process per core at once; the slowest one's wall time.
parallel() {
  local multicore=$1 pids=() i
  for i in $(seq 1 "$CORES"); do
    FIL_PROOFS_USE_MULTICORE_SDR=$multicore FIL_PROOFS_MULTICORE_SDR_PRODUCERS=1 \
      "$REFBIN" phase "$SIZE" cc "$W/ref$i" pc1 > "$W/par$i.json" & pids+=($!)
  done
  wait "${pids[@]}"
  for i in $(seq 1 "$CORES"); do j "['wall_s']" < "$W/par$i.json"; done | sort -g | tail -1
}
b=$(parallel false)
c=$(parallel true)

# kiln: warm-up (parent cache, stamp), then the batch.
"$KILN" bench --sector-size "$SIZE" --phases pc1 --batch 1 --dir "$W" --json >/dev/null 2>&1
"$KILN" bench --sector-size "$SIZE" --phases pc1 --batch "$BATCH" --dir "$W" --json 2>/dev/null > "$W/kiln.json"

python3 - "$SIZE" "$BATCH" "$CORES" "$a" "$b" "$c" "$a_rss" "$W/kiln.json" <<'PY'
import json, sys
size, batch, cores, a, b, c, a_rss, kpath = sys.argv[1:]
batch, cores, a, b, c, a_rss = int(batch), int(cores), float(a), float(b), float(c), int(a_rss)
k = json.load(open(kpath))
pc1 = next(p for p in k["phases"] if p["phase"] == "pc1")
ref = {"A: 1 sector, multicore 1 producer": 3600 / a,
       f"B: {cores} single-core processes at once": 3600 * cores / b,
       f"C: {cores} multicore processes at once": 3600 * cores / c}
best_name, best = max(ref.items(), key=lambda kv: kv[1])
kiln = 3600 * batch / pc1["seconds"]
print(f"PC1 throughput, {size} CC, {cores} cores, one run")
for name, v in ref.items():
    print(f"  reference {name:42} {v:10.0f} sectors/hour")
print(f"  kiln batch of {batch:<3} ({pc1['seconds']:.2f} s, {pc1['percent_of_sha_bound']:.0f}% of one stream's SHA bound) {kiln:10.0f} sectors/hour")
print(f"  kiln / reference best ({best_name[:1]}): {kiln / best:.2f}x")
print(f"  peak RSS: reference one PC1 process {a_rss // 1024} MiB; kiln batch {pc1['peak_rss_bytes'] // 2**20} MiB "
      f"({pc1['peak_rss_bytes'] // batch // 2**20} MiB per sector)")
PY
