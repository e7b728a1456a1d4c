#!/usr/bin/env bash
# One experiment on every GPU of one node.
#
#   launch/multigpu_node.sh WORKDIR --config=configs/vggsound.py --config.al.strategy=badge ...
#
# Default: one process drives all local GPUs; the mesh's data axis spans them (batches, pool
# rows and pool inference are split over it, parameters replicated). PROCESSES=N instead
# starts N processes, one GPU each, joined by jax.distributed on localhost: the layout of a
# multi-node job, tried on one node (selection and ledger are the same either way).
# train.batch_size and train.eval_batch_size must be multiples of the GPU count.
set -euo pipefail
workdir=${1:?usage: launch/multigpu_node.sh WORKDIR [--config=... --config.x=y ...]}
shift
py=${PYTHON:-python3}
# GPUS=N overrides the count (and, with JAX_PLATFORMS=cpu, tries the script on a CPU).
gpus=${GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l)}
[ "$gpus" -ge 1 ] || { echo "no GPU found (nvidia-smi); set GPUS=N" >&2; exit 2; }
processes=${PROCESSES:-1}
echo "node: $gpus GPUs, $processes process(es)" >&2
if [ "$processes" -eq 1 ]; then
  exec "$py" -m rlmba_jax.main --workdir="$workdir" "$@"
fi
if [ $((gpus % processes)) -ne 0 ]; then
  echo "PROCESSES=$processes does not divide the $gpus GPUs" >&2; exit 2
fi
per=$((gpus / processes))
port=${PORT:-12355}
pids=()
for ((i = 0; i < processes; i++)); do
  visible=$(seq -s, $((i * per)) $((i * per + per - 1)))
  CUDA_VISIBLE_DEVICES=$visible JAX_COORDINATOR_ADDRESS=localhost:$port \
    JAX_NUM_PROCESSES=$processes JAX_PROCESS_ID=$i \
    "$py" -m rlmba_jax.main --workdir="$workdir" "$@" > "$workdir.process$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
tail -n 3 "$workdir.process0.log"
[ $status -eq 0 ] || echo "a process failed (exit $status); see $workdir.process*.log" >&2
exit $status
