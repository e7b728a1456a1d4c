#!/usr/bin/env bash
# The paper-protocol comparison of one data set, from nothing to results/<data set>_paper/:
#   1. the classifier's multimodal head (softmax vs evidential), chosen on validation with
#      random sampling on the tuning seeds 100-102 (test never evaluated);
#   2. RL-MBA's open values, chosen on validation on the same tuning seeds (rlmba_jax.tune:
#      a random search, then its 3 best trials with the labelled-distance diversity);
#   3. the comparison on the report seeds 0-4: the eleven baselines, RL-MBA with the paper's
#      values (kappa = 5) and our defaults where it is silent (`rlmba`), with the tuned values
#      (`rlmba_tuned`; `rlmba_tuned_full` with AMCB and EFDA on whatever the search chose),
#      the paper's Table B ablations (AMCB and EFDA set explicitly), the three rewards, and
#      for av_digits RL-MBA with mfeat's tuned values (`rlmba_mfeat_tuned`: transfer);
#   4. the pretrained policies (issue 18): launch/pretrain_policy.py on mfeat's and on
#      av_digits' simulated episodes (each with its own tuned values; pool labels only), then
#      rows `rlmba_invariant` (the tuned RL-MBA with the modality-invariant policy inputs,
#      untrained) and `rlmba_pretrained_<source>` (the same, its policy started from the
#      pretraining on <source>: transfer from the other data set, in-domain from its own).
# Every stage is resumable: re-running the script finishes what is missing (and, once all
# runs are done, only rewrites the reports; results/<data set>_paper/reading.md, the written
# analysis, is appended to report.md).
#
#   bash launch/paper_comparison.sh mfeat
#   FSDD=../shared/data/fsdd TRIALS=8 REFINE=1 TUNE_EXTRA="--include=results/mfeat_paper/tuning.json
#     --refine_space=al.rlmba.diversity=labelled;modality.amcb=true|false;al.rlmba.efda=true|false" \
#     bash launch/paper_comparison.sh av_digits       # results/av_digits_paper as committed
#
# Env: PRETRAIN (runs/pretrain: the pretrained policies), NO_PRETRAIN=1 (leave out stage 4),
# OUT (runs/<data set>_paper), TRIALS (24), REFINE (3), WORKERS (2), RESULTS
# (results/<data set>_paper), FSDD (../shared/data/fsdd), TUNE_EXTRA (more rlmba_jax.tune
# flags, e.g. --include=... --refine_space=...); TUNED=path/tuning.json skips the
# search and takes its chosen values (e.g. another data set's search); REPORT_ONLY=1 runs
# nothing and rewrites the reports from the finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ds=${1:?usage: launch/paper_comparison.sh mfeat|av_digits}
out=${OUT:-runs/${ds}_paper}
results=${RESULTS:-results/${ds}_paper}
trials=${TRIALS:-24}
workers=${WORKERS:-2}
case "$ds" in
  mfeat) cfg=configs/mfeat.py:paper; extra=() ;;
  av_digits) cfg=configs/av_digits.py:paper
             extra=(--config.data.manual_dir="$(realpath "${FSDD:-../shared/data/fsdd}")") ;;
  *) echo "unknown data set $ds (mfeat or av_digits)" >&2; exit 2 ;;
esac

only=()
[ -n "${REPORT_ONLY:-}" ] && only=(--report_only)
python -m rlmba_jax.sweep --config="$cfg" --workdir="$out/classifier" --first_seed=100 --seeds=3 \
  --workers="$workers" "${only[@]}" --config.eval.test=False "${extra[@]}" \
  --title="$ds: the multimodal head chosen on validation (random sampling, tuning seeds)" \
  --strategies=fused_softmax=random/model.fused_head=softmax,fused_evidential=random/model.fused_head=evidential

tuned=${TUNED:-}
if [ -z "$tuned" ] && [ -z "${REPORT_ONLY:-}" ]; then
  python -m rlmba_jax.tune --config="$cfg" --workdir="$out/tune" --trials="$trials" \
    --seeds=100,101,102 --refine_top="${REFINE:-3}" --workers="$workers" "${extra[@]}" \
    ${TUNE_EXTRA:-}
fi
tuned=${tuned:-$out/tune/tuning.json}

fsdd=$(realpath "${FSDD:-../shared/data/fsdd}")
pre=$(realpath -m "${PRETRAIN:-runs/pretrain}")
pretrained=""
if [ -z "${NO_PRETRAIN:-}" ]; then
  if [ -z "${REPORT_ONLY:-}" ]; then  # resumable; nothing to do once both are done
    python launch/pretrain_policy.py --config=configs/mfeat.py:tuned --workdir="$pre/mfeat" \
      --updates=150 --batch=16 --learning_rate=3e-3
    python launch/pretrain_policy.py --config=configs/av_digits.py:tuned \
      --config.data.manual_dir="$fsdd" --workdir="$pre/av_digits" \
      --updates=400 --batch=16 --learning_rate=3e-3
  fi
  invariant="rlmba{tuned}/al.rlmba.policy_inputs=invariant"
  pretrained=",rlmba_invariant=$invariant"
  for src in mfeat av_digits; do
    pretrained+=",rlmba_pretrained_$src=$invariant/al.rlmba.init_from=$pre/$src"
  done
fi

baselines=random,entropy,margin,least_confidence,bald,coreset,kmeans,badge,bmmal,deepfool,gcnal
rlmba="rlmba,rlmba_tuned=rlmba{tuned}"
if [ "$ds" = av_digits ]; then  # transfer: the values mfeat's search chose
  mfeat_values=$(python -c 'import json; print("".join(f"/{k}={v}" for k, v in json.load(open(
    "results/mfeat_paper/tuning.json"))["chosen"]["overrides"].items()))')
  rlmba+=",rlmba_mfeat_tuned=rlmba${mfeat_values}"
fi
ablations="rlmba_tuned_full=rlmba{tuned}/modality.amcb=true/al.rlmba.efda=true"
ablations+=",rlmba_efda_only=rlmba{tuned}/modality.amcb=false/al.rlmba.efda=true"
ablations+=",rlmba_amcb_only=rlmba{tuned}/modality.amcb=true/al.rlmba.efda=false"
ablations+=",rlmba_neither=rlmba{tuned}/modality.amcb=false/al.rlmba.efda=false"
ablations+=",rlmba_no_policy=rlmba{tuned}/al.rlmba.policy=false"
rewards="rlmba_absolute=rlmba{tuned}/al.rlmba.reward=absolute"
rewards+=",rlmba_incremental=rlmba{tuned}/al.rlmba.reward=incremental"
python -m rlmba_jax.sweep --config="$cfg" --workdir="$out/compare" --seeds=5 --workers="$workers" \
  "${only[@]}" \
  --tuned="$tuned" --reading="$results/reading.md" "${extra[@]}" \
  --title="$ds, paper protocol: eleven baselines, RL-MBA (paper values and tuned), ablations, rewards" \
  --strategies="$baselines,$rlmba,$ablations,$rewards$pretrained"

mkdir -p "$results"
cp "$out/compare/report.md" "$out/compare/"*.png "$results/"
if [ -z "${TUNED:-}" ]; then
  cp "$out/tune/tuning.md" "$out/tune/tuning.json" "$results/"
else
  cp "$tuned" "$results/tuning_used.json"
fi
cp "$out/classifier/curves.png" "$results/classifier_curves.png"
sed -e 's/(curves.png)/(classifier_curves.png)/' -e '/modality_weights.png\|shapley.png/d' \
  "$out/classifier/report.md" > "$results/classifier.md"
echo "wrote $results"
