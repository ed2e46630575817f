#!/usr/bin/env bash
# The GPU suite: on a Linux+NVIDIA machine whose Python has the PyPI `nvidia`
# CUDA 13 libraries (driver >= 580), joins the parts made by `make gpu-pack`
# (.gpu/p*/part), lays out MLX's CUDA wheel, genkit and the test binaries, and
# runs every package's tests on the GPU, then the headless commands on the
# default GGUF. Results go to $OUT (or ./gpu-results): summary.txt, one log
# per test binary, commands.log, bench.json.
#   bash scripts/gpu/suite.sh [refs|tests|commands|bench|profile|synthetic|all]...   (default: all)
# peers only starts llama.cpp's build in the background; the device tool ends
# a call's processes when the call returns, so run it in the same call as the
# step that waits for it (bench, synthetic) or wait for $GK/peers/done;
# SUITE_ONLY / SUITE_SKIP pick test packages,
# SUITE_RUN / SUITE_SKIPRUN tests within them.
# synthetic (not part of all: 30 GB of disk, several minutes) measures
# random Qwen3-4B-shaped weights with genkit, mlx-lm and llama.cpp.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-results}
GK=${GK_DIR:-/tmp/genkit-gpu}
mkdir -p "$OUT" "$GK"
SUMMARY=$OUT/summary.txt
say() { echo "$*" | tee -a "$SUMMARY"; }
want() { [ $# -eq 0 ] && return 0; for w in $STEPS; do { [ "$w" = all ] && [ "$1" != synthetic ]; } || [ "$w" = "$1" ] && return 0; done; return 1; }
STEPS=${*:-all}

# 1. Join and check the parts (once per machine; a changed part is re-joined).
last=$(ls -d .gpu/p* 2>/dev/null | grep -E 'p[0-9]+$' | sed 's/.*p//' | sort -n | tail -1)
count=$(cat .gpu/p"$last"/count 2>/dev/null || echo "?")
if [ "$count" = "?" ]; then echo "no .gpu/pN/count: carry every part made by make gpu-pack" >&2; exit 2; fi
for i in $(seq 1 "$count"); do
  [ -f .gpu/p$i/part ] || { echo "part $i of $count is missing on this machine: carry .gpu/p$i" >&2; exit 2; }
done
want_sha=$(cat .gpu/p"$count"/sha256)
if [ "$(cat "$GK/.sha256" 2>/dev/null)" != "$want_sha" ]; then
  for i in $(seq 1 "$count"); do cat .gpu/p$i/part; done > "$GK/pack.tar"
  got=$(sha256sum "$GK/pack.tar" | awk '{print $1}')
  [ "$got" = "$want_sha" ] || { echo "pack sha256 $got, want $want_sha: a part is stale" >&2; exit 2; }
  rm -rf "$GK/stage" && mkdir -p "$GK/stage" && tar -C "$GK/stage" -xf "$GK/pack.tar" &&
    tar -C "$GK/stage" -xJf "$GK/stage/zz-bins.tar.xz" && rm -f "$GK/pack.tar" || exit 2
  # MLX's CUDA backend (and mlx + mlx-lm for the bench peer) into one site dir;
  # libmlx.so finds the CUDA libraries through $ORIGIN/../../nvidia.
  rm -rf "$GK/site" && python3 -m pip install -q --no-index --no-deps --no-compile --target "$GK/site" "$GK"/stage/wheels/*.whl || exit 2
  nv=$(python3 -c 'import nvidia, sys; print(list(nvidia.__path__)[0])') || { echo "no PyPI nvidia libraries in this python" >&2; exit 2; }
  ln -sfn "$nv" "$GK/site/nvidia"
  # MLX's NVRTC reads nvidia/cu13/include before $CUDA_HOME/include; the
  # runtime wheel's mma.h there includes crt/mma.h, which only the toolkit
  # (or the nvcc wheel) has. Lay the toolkit's crt/ beside it, in a copy of
  # the tree made of links, so MLX's tensor-core kernels compile.
  th=${CUDA_HOME:-/usr/local/cuda}/include/crt
  if [ -f "$nv/cu13/include/mma.h" ] && [ ! -e "$nv/cu13/include/crt" ] && [ -d "$th" ]; then
    rm -f "$GK/site/nvidia" && mkdir -p "$GK/site/nvidia/cu13/include"
    for d in "$nv"/*; do [ "$(basename "$d")" = cu13 ] || ln -s "$d" "$GK/site/nvidia/"; done
    for d in "$nv"/cu13/*; do [ "$(basename "$d")" = include ] || ln -s "$d" "$GK/site/nvidia/cu13/"; done
    for f in "$nv"/cu13/include/*; do ln -s "$f" "$GK/site/nvidia/cu13/include/"; done
    ln -s "$th" "$GK/site/nvidia/cu13/include/crt"
  fi
  echo "$want_sha" > "$GK/.sha256"
fi
S=$GK/stage
export LD_LIBRARY_PATH=$GK/site/mlx/lib:$S/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONPATH=$GK/site${PYTHONPATH:+:$PYTHONPATH}
export GENKIT_DEFAULT_MODEL=$S/model.gguf
export GENKIT_CACHE_DIR=$GK/cache GENKIT_DATA_DIR=$GK/data
export GENKIT_REUTERS_DIR=$S/reuters GENKIT_GPU_SUITE=1
export MLX_PTX_CACHE_DIR=${MLX_PTX_CACHE_DIR:-$GK/ptx}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
mkdir -p "$GENKIT_CACHE_DIR" "$GENKIT_DATA_DIR"
GENKIT=$S/bin/genkit
mkdir -p "$ROOT/bin" && ln -sfn "$GENKIT" "$ROOT/bin/genkit"   # where the tmux tests look

: > "$SUMMARY"
say "# genkit GPU suite, $(date -u +%Y-%m-%dT%H:%MZ), commit $(tr '\n' ' ' < "$S/bin/COMMIT")"
say "host: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
say "$($GENKIT version 2>&1 | tr '\n' ';')"

# llama.cpp's llama-bench with CUDA for the bench peer, built in the
# background from the sdist while the tests run (about 5 minutes on 16 cores).
PEERS=$GK/peers
if { want bench || want synthetic || want peers; } && [ -f "$S/zy-llama-cpp.tar.gz" ] && [ ! -x "$PEERS/bin/llama-bench" ] && command -v nvcc >/dev/null; then
  # The sources are unpacked before the call can return; only the build runs
  # in the background.
  mkdir -p "$PEERS" && rm -rf "$PEERS/src" "$PEERS/done" && mkdir "$PEERS/src" &&
    tar -xzf "$S/zy-llama-cpp.tar.gz" -C "$PEERS/src" --strip-components=1 &&
    { setsid bash -c "cd '$PEERS' && cmake -S src -B b -DLLAMA_BUILD_EXAMPLES=OFF -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF > build.log 2>&1 &&
      cmake --build b -j16 --target llama-bench llama-quantize >> build.log 2>&1 && mkdir -p bin && cp b/bin/llama-bench b/bin/llama-quantize bin/; touch done" & }
fi

# refs (not part of all): the transformers references of the tiny models
# (scripts/reference/make_engine_refs.py, make_steering_refs.py) made here,
# with this machine's torch and transformers, into the checkout the tests
# read, and into $OUT/refs.tgz to commit.
if [ -n "${STEPS##*all*}" ] && want refs; then
  start=$(date +%s)
  python3 scripts/reference/make_engine_refs.py --out engine/testdata/hf > "$OUT/refs.log" 2>&1 &&
    python3 scripts/reference/make_steering_refs.py --models engine/testdata/hf --out steering/testdata >> "$OUT/refs.log" 2>&1
  rc=$?
  tar -czf "$OUT/refs.tgz" engine/testdata/hf steering/testdata/hf_steering.json
  say "refs: rc=$rc ($(( $(date +%s) - start )) s) $(python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())')"
fi

# 2. Every package's tests on the GPU, each in its own package directory.
if want tests; then
  # ours WHAT [grep flags]: the lines of $log that report WHAT (PASS, FAIL,
  # SKIP) for the package's own tests and their subtests; a child process's
  # output quoted deeper in the log (a rank that must fail) is not theirs.
  ours() { local what=$1; shift; grep "$@" -- "^--- $what\|^    --- $what" "$log"; }
  while read -r name rel; do
    # SUITE_ONLY / SUITE_SKIP (extended regexps on the package name) split
    # the tests over several calls of a time-limited runner.
    if [ -n "${SUITE_ONLY:-}" ] && ! [[ $name =~ ^(${SUITE_ONLY})$ ]]; then continue; fi
    if [ -n "${SUITE_SKIP:-}" ] && [[ $name =~ ^(${SUITE_SKIP})$ ]]; then continue; fi
    log=$OUT/test-$name.log
    start=$(date +%s)
    (cd "$ROOT/$rel" && timeout 1500 "$S/tests/$name.test" -test.v -test.count=1 -test.timeout 25m -test.run "${SUITE_RUN:-.}" -test.skip "${SUITE_SKIPRUN:-}") > "$log" 2>&1
    rc=$?
    say "tests $rel: rc=$rc pass=$(ours PASS -c) fail=$(ours FAIL -c) skip=$(ours SKIP -c) ($(( $(date +%s) - start )) s)"
    ours SKIP -B1 | grep -v -- '--- SKIP\|^--$' | sed 's/^ */    skip reason: /' | sort | uniq -c | tee -a "$SUMMARY" >/dev/null
    ours FAIL | head -20 | sed 's/^/    /' | tee -a "$SUMMARY" >/dev/null
  done < "$S/tests/PACKAGES"
fi

# 3. The headless commands on the default GGUF.
run() { # run NAME CMD...: log the command, its output and its status
  local name=$1; shift
  echo "== $name: $*" >> "$OUT/commands.log"
  local start=$(date +%s%N)
  "$@" > "$OUT/cmd-$name.out" 2>> "$OUT/commands.log"; local rc=$?
  cat "$OUT/cmd-$name.out" >> "$OUT/commands.log"
  local ms=$(( ($(date +%s%N) - start) / 1000000 ))
  say "command $name: rc=$rc ($((ms / 1000)).$(( (ms % 1000) / 100 )) s)"
  return $rc
}
if want commands; then
  P="Write one sentence about the sea."
  run greedy-gpu $GENKIT generate --prompt "$P" --chat --max-new-tokens 64 --ignore-eos --dtype float32 --weights dense --json
  run greedy-cpu $GENKIT --device cpu generate --prompt "$P" --chat --max-new-tokens 64 --ignore-eos --dtype float32 --weights dense --json
  run greedy-gpu-native $GENKIT generate --prompt "$P" --chat --max-new-tokens 64 --json
  python3 - "$OUT" "$ROOT/docs/gpu/cpu_greedy.json" <<'PY' | tee -a "$SUMMARY"
import json, sys
out, ref = sys.argv[1], sys.argv[2]
def toks(p):
    try:
        d = json.load(open(p))
        return d["tokens"] if "tokens" in d else d["base"]["tokens"]
    except Exception as e: return None
g, c = toks(out + "/cmd-greedy-gpu.out"), toks(out + "/cmd-greedy-cpu.out")
r = toks(ref)
def same(a, b):
    if a is None or b is None: return "n/a"
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{n}/{max(len(a), len(b))} identical"
print(f"greedy fp32 dense, GPU vs this machine's CPU stream: {same(g, c)}")
print(f"greedy fp32 dense, GPU vs the committed CPU run (docs/gpu/cpu_greedy.json): {same(g, r)}")
PY
  run sampled $GENKIT generate --prompt "$P" --chat --max-new-tokens 48 --do-sample --temperature 0.8 --top-p 0.9 --seed 7 --json
  run sampled-again $GENKIT generate --prompt "$P" --chat --max-new-tokens 48 --do-sample --temperature 0.8 --top-p 0.9 --seed 7 --json
  cmp -s "$OUT/cmd-sampled.out" "$OUT/cmd-sampled-again.out" && say "    sampled run reproducible: yes" || say "    sampled run reproducible: NO"
  run pirate-residual $GENKIT generate --prompt "$P" --chat --max-new-tokens 48 --preset pirate --alpha 1 --json
  run pirate-logit-bias $GENKIT generate --prompt "$P" --chat --max-new-tokens 48 --preset pirate --alpha 1 --steer-mode logit-bias --json
  run beams4 $GENKIT generate --prompt "$P" --chat --max-new-tokens 32 --num-beams 4 --json
  run vector-make $GENKIT vector make --preset shakespearean --out "$GK/shakespearean.safetensors"
  run smoke5 $GENKIT smoke --preset pirate --lines 5 --json
  say "command no-gpu: $(CUDA_VISIBLE_DEVICES= $GENKIT version 2>&1 | tr '\n' ' ') (rc=$?)"
  say "command no-gpu auto generate: $(CUDA_VISIBLE_DEVICES= $GENKIT generate --tokens 1,2,3 --max-new-tokens 2 2>&1 | tail -2 | tr '\n' ' ')"
fi
wait_peers() {
  if [ -d "$PEERS" ]; then
    for i in $(seq 1 60); do [ -f "$PEERS/done" ] && break; sleep 5; done
    say "llama.cpp peer: $([ -x "$PEERS/bin/llama-bench" ] && echo built || { echo "not built:"; tail -3 "$PEERS/build.log"; })"
    cp "$PEERS/build.log" "$OUT/llama-build.log" 2>/dev/null
  fi
  export GENKIT_LLAMA_BENCH=$PEERS/bin/llama-bench
}
if want bench; then
  wait_peers
  run bench $GENKIT bench --json --python python3
  cp "$OUT/cmd-bench.out" "$OUT/bench.json" 2>/dev/null
fi
# Random Qwen3-4B-shaped weights: genkit and mlx-lm (bf16, MLX 4-bit/64) and
# llama.cpp (F16 and Q4_0 from its own converter and quantizer).
if want synthetic; then
  wait_peers
  run synthetic $GENKIT bench --synthetic qwen3-4b --json --python python3 --llama-src "$PEERS/src"
  cp "$OUT/cmd-synthetic.out" "$OUT/synthetic.json" 2>/dev/null
  df -h "$GK" | tail -1 | sed 's/^/    disk: /' | tee -a "$SUMMARY" >/dev/null
fi
# Where the time goes: the TUI's key-to-first-token benchmark, and decode
# with MLX's CUDA graphs on and off.
if want profile; then
  (cd "$ROOT/tui" && "$S/tests/tui.test" -test.run '^$' -test.bench 'KeyToFirst|DecodeHeadless' -test.benchtime 3x) > "$OUT/bench-tui.log" 2>&1
  grep -E '^Benchmark' "$OUT/bench-tui.log" | sed 's/^/    /' | tee -a "$SUMMARY" >/dev/null
  for graphs in 1 0; do
    for mode in "--dtype float32 --weights dense" "--dtype auto"; do
      r=$(MLX_USE_CUDA_GRAPHS=$graphs $GENKIT generate --prompt "Tell me a story about a lighthouse keeper." --chat --max-new-tokens 128 --ignore-eos $mode 2>&1 >/dev/null | tail -1)
      say "    decode, MLX_USE_CUDA_GRAPHS=$graphs, $mode: ${r#genkit: }"
    done
  done
fi
say "kernel cache: $(ls "$MLX_PTX_CACHE_DIR" 2>/dev/null | wc -l) files in $MLX_PTX_CACHE_DIR"
# Everything in one file, since a run returns few files.
tar -C "$OUT" -czf "$OUT/../gpu-results.tgz" --exclude=gpu-results.tgz . 2>/dev/null && mv "$OUT/../gpu-results.tgz" "$OUT/" || true
