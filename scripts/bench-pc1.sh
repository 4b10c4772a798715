#!/usr/bin/env bash
# Runs kiln's PC1/PC2 criterion benchmarks (8MiB layer, tree_c, tree_r_last).
# Results land in target/criterion/; compare runs with --save-baseline/--baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p kiln-benches "$@"
echo "reports: target/criterion/report/index.html"
