#!/usr/bin/env bash
# Model-step benchmarks on one accelerator: the PyTorch reference (torch_reference.py) and ours,
# same card, same call (run from the repository root; JSON lines appended to ${1:-model_bench.jsonl}).
# The device image lacks ml_collections: carry its wheel in .whl/ (see the README).
set -u
out=${1:-model_bench.jsonl}
. launch/device_env.sh
ref() { timeout 240 "$py" ../shared/bench/torch_reference.py --out "$out" "$@" \
          || echo "{\"failed\": \"torch $*\"}"; }
ours() { timeout 240 "$py" launch/benchmark.py "$@" | tee -a "$out" \
           || echo "{\"failed\": \"jax $*\"}"; }
ref --which av_train; ref --which av_train --amp; ref --which av_train --amp --compile
ours --which=av_train; ours --which=av_train --amp
ref --which av_infer --amp; ours --which=av_infer --amp
ref --which it_train --amp; ours --which=it_train --amp
