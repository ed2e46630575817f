#!/usr/bin/env bash
# Runs the distributed tests on a machine with two NVIDIA GPUs, from the
# parts scripts/gpu/dist-pack.sh makes (carried in .gpu/dist1, .gpu/dist2,
# then .gpu/dist3 with this script): the mlx collectives over ring, genkit
# launch + dist-check over NCCL, the sharded MLP over NCCL (one GPU a rank),
# and the shard and launch tests on the GPU. See docs/distributed.md.
set -u
G=/tmp/gkdist
mkdir -p $G/bins
cd "$(dirname "$0")/../.."  # the repository root (run as .gpu/dist3/dist.sh)
if [ ! -d $G/site/mlx ]; then
  cat .gpu/dist1/wheel.a .gpu/dist2/wheel.b > $G/w.whl
  [ "$(sha256sum $G/w.whl | awk '{print $1}')" = "$(cat .gpu/dist2/wheel.sha256)" ] || { echo "wheel sha mismatch"; exit 2; }
  cp $G/w.whl $G/$(cat .gpu/dist2/wheel.name)
  python3 -m pip install -q --no-index --no-deps --no-compile --target $G/site $G/$(cat .gpu/dist2/wheel.name) || exit 2
  nv=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])') && ln -sfn "$nv" $G/site/nvidia
fi
xz -dc .gpu/dist3/bins.tar.xz | tar -C $G/bins -xf -
export LD_LIBRARY_PATH=$G/site/mlx/lib:$G/bins/libs
export MLX_PTX_CACHE_DIR=$G/ptx CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
cd $G/bins
nvidia-smi -L
echo "== mlx dist tests (ring, CUDA build)"
timeout 300 ./mlx.test -test.run 'Dist|RingHostfile' -test.v 2>&1 | tail -30
echo "== launch + dist-check over NCCL"
GENKIT_TEST_AS_GENKIT=1 timeout 300 ./internal_cli.test launch -n 2 --backend nccl --init-timeout 120s -- dist-check; echo "rc=$?"
echo "== launch auto"
GENKIT_TEST_AS_GENKIT=1 timeout 300 ./internal_cli.test launch -n 2 -- dist-check; echo "rc=$?"
echo "== sharded MLP over NCCL"
P=$((29000 + RANDOM % 1000))
for r in 0 1; do
  MLX_RANK=$r MLX_WORLD_SIZE=2 NCCL_HOST_IP=127.0.0.1 NCCL_PORT=$P CUDA_VISIBLE_DEVICES=$r NCCL_NVLS_ENABLE=0 \
  GENKIT_DIST_BACKEND=nccl GENKIT_TEST_SHARD_WORKER=1 timeout 300 ./engine.test -test.run '^TestShardMLPWorker$' -test.v > $G/mlp$r.log 2>&1 &
done
wait
tail -5 $G/mlp0.log $G/mlp1.log
echo "== launch tests (ring, GPU device)"
timeout 300 ./internal_cli.test -test.run 'Launch|PrefixWriter' -test.v 2>&1 | tail -20
echo "== engine shard tests on the GPU"
timeout 300 ./engine.test -test.run 'Shard' -test.v 2>&1 | tail -20
