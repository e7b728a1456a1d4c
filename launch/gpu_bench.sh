#!/usr/bin/env bash
# Issue-7 benchmark table (and issue 27's seed-batched rows) on one accelerator, the PyTorch reference in the same call (run from
# the repository root; JSON lines appended to ${1:-gpu_bench.jsonl}; about 9 minutes on an
# H100/H200, each command under its own time limit so one slow step cannot sink the rest).
# The device image lacks ml_collections: carry its wheel in .whl/ (see the README).
#   targets: av_train b32 >= torch.compile bf16; av_infer >= 1.3x eager bf16; it_train >=
#   1.3x eager bf16; badge N=50k C=31 >= 30x; rlmba_select N=100k D=1024 b=1000 < 1 s.
set -u -o pipefail
out=${1:-gpu_bench.jsonl}
. launch/device_env.sh
ref() { timeout "${T:-150}" "$py" ../shared/bench/torch_reference.py --out "$out" "$@" \
          || echo "{\"failed\": \"torch $*\"}" | tee -a "$out"; }
ours() { timeout "${T:-150}" "$py" launch/benchmark.py "$@" | grep '^{' | tee -a "$out" \
           || echo "{\"failed\": \"jax $*\"}" | tee -a "$out"; }
# selection (cheap, the headline ratios first)
ref --which badge --badge_n 50000 --badge_c 31 --badge_b 1000
ours --which=badge --badge_n=50000 --badge_c=31 --badge_b=1000
ours --which=rlmba_select --badge_n=100000 --badge_d=1024 --badge_b=1000
ours --which=bmmal --badge_n=50000 --badge_c=31 --badge_b=1000
# model steps at batch 32 / inference at 256, bf16
ref --which av_train --batch 32 --amp
ours --which=av_train --batch=32 --amp
ref --which av_infer --infer_batch 256 --amp
ours --which=av_infer --infer_batch=256 --amp
ref --which it_train --batch 32 --amp
ours --which=it_train --batch=32 --amp
T=200 ref --which av_train --batch 32 --amp --compile
# a whole round and the selection scaling curve
ours --which=round --pool_sizes=100000 --strategy=rlmba --labels=1000 --picks=1000 --epochs=10
T=240 ours --which=scaling --strategies=badge,rlmba \
    --pool_sizes=10000,30000,100000,300000,1000000 --repeats=2
# policy pretraining: simulated episodes per second, one at a time and vmapped (issue 18)
ours --which=episodes --episode_batches=1,16,64,256 --repeats=3
# seed-batched runs (issue 27): seed-rounds per second against single runs, all seeds vmapped
T=420 ours --which=seeds --seeds_config=mfeat:paper --strategy=margin \
    --seed_counts=1,16,64,256,1024 --single_runs=4
