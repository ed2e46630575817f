# Sourced by the GPU scripts run after `bash scripts/gpu/suite.sh none` has
# laid out the pack (quick.sh, probe.sh, tp.sh): the repository root, $OUT,
# the pack's place ($GK, $S) and the environment genkit and its test
# binaries run in there.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-results}
GK=${GK_DIR:-/tmp/genkit-gpu}
S=$GK/stage
export LD_LIBRARY_PATH=$GK/site/mlx/lib:$S/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONPATH=$GK/site${PYTHONPATH:+:$PYTHONPATH}
export GENKIT_DEFAULT_MODEL=$S/model.gguf GENKIT_CACHE_DIR=$GK/cache GENKIT_DATA_DIR=$GK/data
export MLX_PTX_CACHE_DIR=${MLX_PTX_CACHE_DIR:-$GK/ptx} GENKIT_GPU_SUITE=1
mkdir -p "$OUT" "$GENKIT_CACHE_DIR" "$GENKIT_DATA_DIR"
