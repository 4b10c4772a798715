#!/usr/bin/env bash
# C2 side by side with the reference, and the reference verifying kiln's proof.
#
#   scripts/side_by_side_c2.sh SIZE [KILN]      SIZE: 2KiB or 8MiB
#
# Needs the reference harness built (../shared/reference/README.md) and the
# SIZE parameters in its cache, listed in that directory's
# kiln-local-manifest.json: `kiln params generate --sector-size SIZE
# --reference-seed --param-dir $REFWORK/params` writes both (the files are the
# ones `refharness params SIZE` writes, byte for byte, in a fraction of the
# time). Seals the same CC sector with both (prover 0x01…, sector 1,
# ticket 0x02…, seed 0x03…), kiln with the reference's parameter files, then
# hands kiln's proof to the reference's verify_seal. Run on a quiet machine.
set -euo pipefail
SIZE=${1:?size}
KILN=$(realpath "${2:-target/release/kiln}")
REFWORK=${XDG_CACHE_HOME:-$HOME/.cache}/kiln-reference
export FIL_PROOFS_PARAMETER_CACHE=$REFWORK/params/ FIL_PROOFS_PARENT_CACHE=$REFWORK/parents
B=$REFWORK/target/release
RUN=$(mktemp -d "$REFWORK/c2-$SIZE-XXXX")
trap 'rm -rf "$RUN"' EXIT
HARNESS_C2_REPEAT=0 "$B/refharness" run "$SIZE" cc "$RUN/ref" > /dev/null 2> "$RUN/ref.log"
O=$(printf '01%.0s' {1..32}); T=$(printf '02%.0s' {1..32}); S=$(printf '03%.0s' {1..32})
"$KILN" seal all --sector-size "$SIZE" --prover-id "$O" --sector-id 1 --ticket "$T" --seed "$S" \
    --dir "$RUN/kiln" --param-dir "$REFWORK/params" --json > "$RUN/kiln.json" 2> "$RUN/kiln.log"
python3 - "$RUN" "$SIZE" <<'PY'
import json, sys
run, size = sys.argv[1], sys.argv[2]
ref = json.load(open(f"{run}/ref/timings.json"))["phases"]["c2"]
kiln = json.load(open(f"{run}/kiln.json"))
open(f"{run}/ref/proof.bin", "wb").write(bytes.fromhex(kiln["proof"]))
c2 = next(p for p in kiln["phases"] if p["phase"] == "c2")
print(f"C2 {size} side by side, one run")
print(f"  reference {ref['wall_s']:8.2f} s  peak {ref['maxrss_kib'] // 1024:6d} MiB")
print(f"  kiln      {c2['seconds']:8.2f} s  peak {c2['peak_rss_bytes'] // 1048576:6d} MiB  (verified by kiln: {kiln['verified']})")
print(f"  speed-up  {ref['wall_s'] / c2['seconds']:8.2f}x")
PY
"$B/refharness" phase "$SIZE" cc "$RUN/ref" verify 2> /dev/null | tail -1 > "$RUN/verify.json"
python3 - "$RUN/verify.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
print(f"  the reference's verify_seal of kiln's proof: {v['verify_seal']}"
      f" (with a wrong seed: {v['verify_seal_with_wrong_seed']})")
PY
