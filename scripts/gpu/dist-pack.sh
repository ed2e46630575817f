#!/usr/bin/env bash
# Packs what scripts/gpu/dist.sh needs on a machine with two NVIDIA GPUs:
# MLX's CUDA wheel in two parts (.gpu/dist1, .gpu/dist2) and the mlx, engine
# and internal/cli test binaries with the Debian BLAS libraries they link
# (.gpu/dist3, with dist.sh). Each folder travels in its own run (each under
# 64 MiB with the working tree); the third run executes dist.sh. Needs the
# cgo environment of the Makefile (source it as make does) and the CUDA wheel
# in build/gpu-wheels (make gpu-pack fetches it) or at $CUDA_WHEEL.
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${CUDA_WHEEL:-$(ls build/gpu-wheels/mlx_cuda_13-*.whl | head -1)}
rm -rf .gpu/dist1 .gpu/dist2 .gpu/dist3 build/dist-stage
mkdir -p .gpu/dist1 .gpu/dist2 .gpu/dist3 build/dist-stage/libs
head -c 48000000 "$W" > .gpu/dist1/wheel.a
tail -c +48000001 "$W" > .gpu/dist2/wheel.b
sha256sum "$W" | awk '{print $1}' > .gpu/dist2/wheel.sha256
basename "$W" > .gpu/dist2/wheel.name
for p in mlx engine internal/cli; do
  go test -c -ldflags='-s -w' -o "build/dist-stage/$(echo $p | tr / _).test" ./$p
done
for lib in $(ldd build/dist-stage/mlx.test | awk '/openblas|gfortran|quadmath/ && $3 ~ /^\/lib|^\/usr/ {print $3}'); do
  cp -L "$lib" build/dist-stage/libs/
done
tar -C build/dist-stage -cf - . | xz -6 -T2 > .gpu/dist3/bins.tar.xz
cp scripts/gpu/dist.sh .gpu/dist3/
du -sh .gpu/dist1 .gpu/dist2 .gpu/dist3
