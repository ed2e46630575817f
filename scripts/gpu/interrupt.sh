#!/usr/bin/env bash
# Diagnoses the exit status of `genkit generate` interrupted mid-decode on
# the GPU machine (run after suite.sh has laid out genkit): SIGINT and
# SIGTERM, on the GPU and the CPU stream, with and without CUDA graphs,
# under strace when it is installed.
GK=${GK_DIR:-/tmp/genkit-gpu}
S=$GK/stage
export LD_LIBRARY_PATH=$GK/site/mlx/lib:$S/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export GENKIT_DEFAULT_MODEL=$S/model.gguf GENKIT_CACHE_DIR=$GK/cache GENKIT_DATA_DIR=$GK/data MLX_PTX_CACHE_DIR=$GK/ptx
G=$S/bin/genkit
for dev in gpu cpu; do
  for graphs in 1 0; do
    for sig in INT TERM; do
      MLX_USE_CUDA_GRAPHS=$graphs GOTRACEBACK=all $G --device $dev generate --prompt "Write a very long story about the sea." --chat \
        --max-new-tokens 4000 --ignore-eos > /dev/null 2> /tmp/int.err &
      pid=$!
      sleep 4
      kill -$sig $pid
      wait $pid
      rc=$?
      echo "device $dev graphs $graphs SIG$sig: rc=$rc stderr: $(tail -c 300 /tmp/int.err | tr '\n' ' ')"
    done
  done
done
if command -v strace >/dev/null; then
  strace -f -qq -e trace=exit_group,exit,kill,tgkill -o /tmp/strace.log $G generate --prompt "Write a very long story about the sea." --chat \
    --max-new-tokens 4000 --ignore-eos > /dev/null 2>&1 &
  sleep 5; kill -INT $(pgrep -f "max-new-tokens 4000" | grep -v strace | tail -1); wait
  grep -E "exit|kill" /tmp/strace.log | tail -20
else
  echo "no strace"
fi
