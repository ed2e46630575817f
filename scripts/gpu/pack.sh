#!/usr/bin/env bash
# Packs genkit, every package's test binary and what they need for the GPU
# suite (scripts/gpu/suite.sh) into parts of at most PART_BYTES bytes:
# .gpu/p1/part, .gpu/p2/part, ... Each part travels to the GPU machine in its
# own run; suite.sh joins them there. Called by `make gpu-pack`, which sets
# the cgo environment, MLX_VERSION, DEFAULT_MODEL and VENV.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${MLX_VERSION:?}" "${DEFAULT_MODEL:?}" "${VENV:?}"
PART_BYTES=${PART_BYTES:-24000000} # with the ~38 MB tree, one part a call stays under 64 MiB
MLXLM_VERSION=0.32.2
OUTDIR=.gpu
STAGE=build/gpu-stage
WHEELS=build/gpu-wheels
TAR_DET=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner)
rm -rf "$STAGE" "$OUTDIR" && mkdir -p "$STAGE/bin" "$STAGE/tests" "$STAGE/libs" "$WHEELS" "$OUTDIR"

echo "gpu-pack: building genkit and the test binaries"
cp bin/genkit "$STAGE/bin/genkit"
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do
  rel=${pkg#github.com/mlx-genkit/genkit}; rel=${rel#/}; [ -n "$rel" ] || rel=.
  name=$(echo "$rel" | tr / _)
  go test -c -ldflags='-s -w' -o "$STAGE/tests/$name.test" "./$rel"
  echo "$name $rel" >> "$STAGE/tests/PACKAGES"
done

# Debian libraries the binaries link beside libmlx (OpenBLAS on Linux CPU builds).
for lib in $(ldd bin/genkit | awk '/openblas|gfortran|quadmath/ {print $3}'); do
  cp -L "$lib" "$STAGE/libs/$(basename "$lib")"
done

echo "gpu-pack: fetching the CUDA wheel and mlx-lm (cached in $WHEELS)"
for spec in "mlx-cuda-13==$MLX_VERSION" "mlx==$MLX_VERSION" "mlx-lm==$MLXLM_VERSION"; do
  name=${spec%%==*}; ver=${spec##*==}
  ls "$WHEELS"/$(echo "$name" | tr - _)-"$ver"-*.whl >/dev/null 2>&1 ||
    "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.12 --implementation cp --platform manylinux_2_35_x86_64 -d "$WHEELS" "$spec"
done
mkdir -p "$STAGE/wheels" && cp "$WHEELS"/*.whl "$STAGE/wheels/"
# SLIM=1 packs only the CUDA wheel and the binaries (tests that need no model).
if [ "${SLIM:-0}" = 1 ]; then rm -f "$STAGE"/wheels/mlx-*.whl "$STAGE"/wheels/mlx_lm-*.whl; else cp "$DEFAULT_MODEL" "$STAGE/model.gguf"; fi

# The smoke suite's news lines (extracted from Debian's r-cran-tm here; the
# GPU machine has no network).
reuters=${GENKIT_REUTERS_DIR:-$GENKIT_CACHE_DIR/reuters/texts}
if [ "${SLIM:-0}" = 1 ]; then :; elif [ ! -d "$reuters/crude" ]; then
  bin/genkit smoke --preset pirate --lines 1 >/dev/null 2>&1 || true
fi
if [ -d "$reuters/crude" ]; then cp -R "$reuters" "$STAGE/reuters"; else echo "gpu-pack: no Reuters texts; smoke will be skipped" >&2; fi
# llama.cpp's source for the bench peer (suite.sh builds it there with CUDA).
# Only what a CUDA/CPU build of llama-bench needs (the sdist is 77 MB).
if [ "${SLIM:-0}" != 1 ] && [ -d build/peers/src/vendor/llama.cpp ]; then
  tar -C build/peers/src/vendor -czf "$STAGE/zy-llama-cpp.tar.gz" "${TAR_DET[@]}" \
    --exclude=llama.cpp/models --exclude=llama.cpp/docs --exclude=llama.cpp/tools/ui --exclude=llama.cpp/media \
    --exclude=llama.cpp/benches --exclude=llama.cpp/tests --exclude=llama.cpp/examples \
    --exclude=llama.cpp/ggml/src/ggml-{et,metal,hexagon,sycl,vulkan,opencl,cann,musa,webgpu,zdnn,rpc,blas} llama.cpp
fi
git rev-parse HEAD > "$STAGE/bin/COMMIT"; git status --porcelain | grep -q . && echo dirty >> "$STAGE/bin/COMMIT" || true

echo "gpu-pack: compressing the binaries"
tar "${TAR_DET[@]}" -C "$STAGE" -cf - bin tests libs | xz -9 -T1 > "$STAGE/zz-bins.tar.xz"
rm -rf "$STAGE/bin" "$STAGE/tests" "$STAGE/libs"
# Deterministic and with the binaries last: after a code change only the
# last part(s) differ, so only they need to travel again.
tar "${TAR_DET[@]}" -C "$STAGE" -cf build/gpu-pack.tar .
sha256sum build/gpu-pack.tar | awk '{print $1}' > build/gpu-pack.sha256
split -b "$PART_BYTES" -d -a 2 build/gpu-pack.tar build/gpu-part-
i=0
for p in build/gpu-part-*; do
  i=$((i + 1)); mkdir -p "$OUTDIR/p$i"; mv "$p" "$OUTDIR/p$i/part"
  sha256sum "$OUTDIR/p$i/part" | awk '{print $1}' > "$OUTDIR/p$i.sha256"
done
cp build/gpu-pack.sha256 "$OUTDIR/p$i/sha256"; echo "$i" > "$OUTDIR/p$i/count"
echo "gpu-pack: $i parts in $OUTDIR (carry .gpu/p1 .. .gpu/p$i, one per run; the last one runs scripts/gpu/suite.sh)"
ls -l "$OUTDIR"/p*/part
