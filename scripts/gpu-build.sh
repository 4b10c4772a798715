#!/usr/bin/env bash
# Builds `kiln` and `kiln-worker` with the `gpu` feature (CUDA, for Hopper:
# sm_90 machine code plus compute_90 PTX for newer chips).
#
#   scripts/gpu-build.sh [OUT_DIR]      default OUT_DIR: target/gpu
#
# Needs no CUDA installation: the compiler and headers (CUDA 13.0) come from
# PyPI into a venv under $XDG_CACHE_HOME/kiln/cuda, outside the clone. The
# binaries link against libcuda.so.1, the NVIDIA driver's library, which a
# build machine without a driver lacks; the script links against a stub
# whose every entry point answers CUDA_ERROR_NO_DEVICE. On a machine with the
# driver the real library is loaded; where the stub is on the library path
# (`$CACHE/stub/lib64`), a GPU build sees no GPU and proves on the CPU.
# The normal build needs none of this.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/gpu}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/kiln/cuda
CUDA_PIP=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96)

if [ ! -x "$CACHE/venv/bin/python" ]; then
    python3 -m venv "$CACHE/venv"
fi
SITE=$("$CACHE/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
CUDA_ROOT=$SITE/nvidia/cu13
if [ ! -x "$CUDA_ROOT/bin/nvcc" ]; then
    "$CACHE/venv/bin/pip" install -q "${CUDA_PIP[@]}"
fi
export PATH=$CUDA_ROOT/bin:$PATH CUDA_PATH=$CUDA_ROOT
# nvcc looks for cicc under ../nvvm relative to itself, as in a toolkit.
nvcc --version | tail -1 >&2

# The stub exports every driver function cuda-driver-sys declares.
cargo fetch --quiet
DRIVER_SYS=$(cargo metadata --format-version 1 --features kiln-proofs/gpu 2>/dev/null \
    | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cuda-driver-sys"))')
mkdir -p "$CACHE/stub/lib64"
grep -o 'pub fn cu[A-Za-z0-9_]*' "$(dirname "$DRIVER_SYS")/src/cuda.rs" | sort -u \
    | awk '{print "int " $3 "(void) { return 100; /* CUDA_ERROR_NO_DEVICE */ }"}' > "$CACHE/stub/cuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CACHE/stub/lib64/libcuda.so" "$CACHE/stub/cuda_stub.c"
ln -sf libcuda.so "$CACHE/stub/lib64/libcuda.so.1"
export CUDA_LIBRARY_PATH=$CACHE/stub

# ec-gpu-gen compiles bellperson's and neptune's kernels with these flags.
export EC_GPU_CUDA_NVCC_ARGS="--optimize=6 --threads=0 --fatbin --gpu-architecture=sm_90 --generate-code=arch=compute_90,code=[sm_90,compute_90]"
cargo build --release --features kiln-sealing/gpu,kiln-worker/gpu --bin kiln --bin kiln-worker
mkdir -p "$OUT"
for b in kiln kiln-worker; do
    cp target/release/$b "$OUT/$b"
    strip "$OUT/$b"
done
# The next plain `cargo build --release` must not reuse the GPU binaries.
touch sealing/src/main.rs worker/src/main.rs
ls -l "$OUT"
