#!/usr/bin/env bash
# One experiment on every host of a Cloud TPU VM slice (e.g. v5litepod-16: 4 hosts x 4 chips).
#
#   launch/tpu_vm_slice.sh TPU_NAME ZONE setup                  # copy this checkout, install
#   launch/tpu_vm_slice.sh TPU_NAME ZONE run WORKDIR --config=configs/food101.py ...
#
# `run` starts the same command on every host (--worker=all). RLMBA_DISTRIBUTED=1 makes each
# call jax.distributed.initialize(), which finds the slice's coordinator by itself; the mesh
# then spans every chip of the slice. WORKDIR and config.data.data_dir must name a file
# system every host sees at the same path (Filestore NFS, or a gcsfuse mount): process 0
# builds the data set's ArrayRecord copy and writes the ledger, reports and checkpoints;
# the other hosts read the copy and join the checkpoint writes.
set -euo pipefail
tpu=${1:?usage: launch/tpu_vm_slice.sh TPU_NAME ZONE setup|run [WORKDIR flags...]}
zone=${2:?zone}
action=${3:?setup or run}
shift 3
remote_dir=${REMOTE_DIR:-rlmba_jax}
ssh_all() {
  gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command="$1"
}
case "$action" in
  setup)
    gcloud compute tpus tpu-vm scp --zone="$zone" --worker=all --recurse \
      "$(cd "$(dirname "$0")/.." && pwd)" "$tpu:~/$remote_dir"
    ssh_all "cd ~/$remote_dir && python3 -m pip install -q -e . 'jax[tpu]'"
    ;;
  run)
    workdir=${1:?WORKDIR}
    shift
    args=$(printf ' %q' "$@")
    ssh_all "cd ~/$remote_dir && RLMBA_DISTRIBUTED=1 python3 -m rlmba_jax.main \
      --workdir=$(printf %q "$workdir")$args 2>&1 | tee -a /tmp/rlmba_run.log"
    ;;
  *)
    echo "unknown action $action: use setup or run" >&2; exit 2 ;;
esac
