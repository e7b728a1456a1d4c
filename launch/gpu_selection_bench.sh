#!/usr/bin/env bash
# Selection benchmarks on one accelerator, with the PyTorch BADGE reference on the same card
# (run from the repository root; prints JSON lines, appends them to ${1:-selection_bench.jsonl}).
# The device image lacks ml_collections: carry its wheel in .whl/ (see the README).
set -u
out=${1:-selection_bench.jsonl}
. launch/device_env.sh
for n in 15000 50000; do
  timeout 200 "$py" ../shared/bench/torch_reference.py --which badge --badge_n $n \
      --badge_c 31 --badge_b 1000 --out "$out" || echo "{\"failed\": \"torch badge $n\"}"
  timeout 200 "$py" launch/benchmark.py --which=badge --badge_n=$n --badge_c=31 \
      --badge_b=1000 | tee -a "$out"
done
timeout 300 "$py" launch/benchmark.py --which=strategies --pool_sizes=15000,50000,200000 \
    --classes=31,309 --picks=1000 --labelled=1000 --repeats=2 | tee -a "$out"
