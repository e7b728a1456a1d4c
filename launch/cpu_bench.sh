#!/usr/bin/env bash
# The issue-7 table on a CPU machine, PyTorch reference beside ours (run from the repository
# root; JSON lines appended to ${1:-cpu_bench.jsonl}; about 45 minutes on 2 cores, most of it
# the scaling curve and the materialised PyTorch BADGE). The model workloads run at small
# batches: a CPU step of these networks takes seconds. TORCH_PYTHON names an interpreter with
# torch + torchvision (+ transformers for it_train).
set -u -o pipefail
out=${1:-cpu_bench.jsonl}
py=${PYTHON:-python}
tpy=${TORCH_PYTHON:-python3}
ref=../shared/bench/torch_reference.py
ours() { "$py" launch/benchmark.py "$@" | grep '^{' | tee -a "$out"; }
theirs() { "$tpy" "$ref" "$@" | tee -a "$out"; }
ours --which=scaling --strategies=rlmba,badge \
    --pool_sizes=10000,30000,100000,300000,1000000 --repeats=1
ours --which=badge --badge_n=50000 --badge_c=31 --badge_b=30 --repeats=1
theirs --which badge --badge_n 50000 --badge_c 31 --badge_b 30
ours --which=bmmal --badge_n=50000 --badge_c=31 --badge_b=1000 --repeats=1
ours --which=rlmba_select --badge_n=100000 --badge_b=1000 --repeats=1
for s in rlmba badge; do
  ours --which=round --pool_sizes=100000 --strategy=$s --labels=1000 --picks=1000 --epochs=10
done
ours --which=it_train --batch=4 --warmup=1 --steps=2
theirs --which it_train --batch 4 --warmup 1 --steps 2
ours --which=av_infer --infer_batch=16 --warmup=1 --steps=2
theirs --which av_infer --infer_batch 16 --warmup 1 --steps 2
ours --which=av_train --batch=8 --warmup=1 --steps=2
theirs --which av_train --batch 8 --warmup 1 --steps 2
# policy pretraining: simulated episodes per second, one at a time and vmapped (issue 18)
ours --which=episodes --episode_batches=1,4,16 --repeats=3
