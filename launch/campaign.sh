#!/usr/bin/env bash
# The paired comparison of results/{mfeat,av_digits}_paired/plan.md: every stage of the
# plans, in the plans' order, resumable (run it again to finish what is missing). Seeds go
# in blocks of 10 over every row of a stage, so at any moment all rows of a stage have the
# same finished seeds (paired), and each finished block is complete on disk.
#
#   bash launch/campaign.sh                 # everything, in order (days on 2 CPU cores)
#   STAGES="M1 AS A1" bash launch/campaign.sh
#   REPORT_ONLY=1 bash launch/campaign.sh   # only the reports from what has finished
#
# Env: OUT (runs/campaign), FSDD (../shared/data/fsdd), STAGES (all, in order), CODE (the
# checkout whose code runs the rows: this one by default; a worktree at the plan's fixed
# commit, with that worktree's Python first on PATH), RECORDS (results: the studies'
# folders with their seeds.jsonl), MERGE (1: only add finished runs to the records).
#
# Across sessions: runs/ does not outlive a machine, the per-seed records do. Before each
# session ends, `MERGE=1 OUT=... bash launch/campaign.sh` adds every sweep folder's finished
# runs to the committed seeds.jsonl of its study (checking that a run it already has
# reproduces its record), and the next session's campaign skips every (row, seed) recorded
# there. Records, plans and this script are this checkout's; only the rows' code is CODE's,
# so a campaign at an old commit continues from main's latest records:
#   CODE=/work/campaign PATH=/work/campaign/.venv/bin:$PATH STAGES=A1 bash launch/campaign.sh
# A continuation at a later commit first reruns one recorded block of two rows and checks
# the curves are the same (compare.py refuses runs that differ).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=$(realpath -m "${OUT:-runs/campaign}")
fsdd=$(realpath -m "${FSDD:-../shared/data/fsdd}")  # av_digits' recordings (its stages check)
code=$(realpath "${CODE:-$here}")
records=$(realpath -m "${RECORDS:-$here/results}")  # the studies' folders with seeds.jsonl
stages=${STAGES:-M1 AS A1 M2 MH AH A2 MO AO MP AP}
mkdir -p "$out"

results_of() {  # the study folder whose seeds.jsonl keeps a sweep folder's records
  local name; name=$(basename "$1")
  case "$name" in
    *_longtail) echo "$records/${name%_longtail}_paired/longtail" ;;
    *_noisy) echo "$records/${name%_noisy}_paired/noisy" ;;
    *_oracle) echo "$records/${name%_oracle}_paired" ;;  # paired with the study's rows
    *_pretrained) echo "$records/${name%_pretrained}_paired" ;;
    *) echo "$records/${name}_paired" ;;
  esac
}

# The policies of stages MP and AP (pretrain_policies), kept once finished: a later
# machine copies them in instead of pretraining again (about 2 process-hours).
kept_pretraining=$records/paired_pretraining
declare -A PRETRAIN_UPDATES=([mfeat]=150 [av_digits]=400)

# MERGE=1: add every sweep folder's finished runs to its study's seeds.jsonl, and keep the
# finished pretrainings, nothing else (run it, with this checkout's Python, before a session
# ends: run folders die with the machine, committed records do not). Each folder's
# commit.txt names the commit of its runs.
if [ -n "${MERGE:-}" ]; then
  for src in "${!PRETRAIN_UPDATES[@]}"; do
    from=$out/pretrain/$src
    [ -f "$from/pretrain.jsonl" ] && [ ! -e "$kept_pretraining/$src" ] || continue
    last=$(tail -n 1 "$from/pretrain.jsonl" | python -c 'import json,sys; print(json.load(sys.stdin)["update"])')
    [ "$last" = "${PRETRAIN_UPDATES[$src]}" ] || continue
    mkdir -p "$kept_pretraining/$src/checkpoints"
    cp "$from"/*.json "$from"/*.jsonl "$kept_pretraining/$src/"
    cp -r "$from/checkpoints/$last" "$kept_pretraining/$src/checkpoints/"
    echo "kept the finished pretraining $from in $kept_pretraining/$src"
  done
  for dir in "$out"/*/; do
    dir=${dir%/}
    [ -d "$dir/runs" ] || continue
    case $(basename "$dir") in
      mfeat*) rounds=8 ;;      # configs/mfeat.py:paper
      av_digits*) rounds=4 ;;  # configs/av_digits.py:paper
      *) echo "campaign.sh: $dir is no sweep of the plans; left as it is" >&2; continue ;;
    esac
    python launch/compare.py --sweep="$dir" --out="$(results_of "$dir")" --rounds=$rounds \
      --records_only
  done
  exit 0
fi

cd "$code"
echo "campaign at commit $(git rev-parse HEAD) (records and script: $(git -C "$here" rev-parse HEAD)) $(date -u +%FT%TZ): $stages" >> "$out/commits.txt"

# The commands as the checkout the rows run in has them (a worktree at an earlier commit has
# launch/sweep.py and launch/tune.py; later ones the package's commands).
SWEEP=(python -m rlmba_jax.sweep); TUNE=(python -m rlmba_jax.tune)
[ -f launch/sweep.py ] && SWEEP=(python launch/sweep.py) && TUNE=(python launch/tune.py)

MFEAT_TUNED=$here/results/mfeat_paper/tuning.json
# The av_digits search's choice: committed to results/ once a session finished it (AS is
# then not run again), else where this campaign's AS writes it.
AV_TUNED=$here/results/av_digits_paired/tuning.json
[ -f "$AV_TUNED" ] || AV_TUNED=$out/av_digits/tune/tuning.json
# The rows (rlmba_jax.sweep entries) of the plans; {tuned} is the data set's search.
BASE="random,margin,badge,bmmal,gcnal,deepfool"
CORE="rlmba,rlmba_tuned=rlmba{tuned},rlmba_prior=rlmba{tuned}/al.rlmba.learning_rate=0/al.rlmba.entropy_weight=0,rlmba_topq=rlmba{tuned}/al.rlmba.policy=false"
MECH="power_margin,power_entropy,rlmba_uniform=rlmba{tuned}/al.rlmba.prior_temperature=1000000.0/al.rlmba.learning_rate=0/al.rlmba.entropy_weight=0,rlmba_u_in_q=rlmba{tuned}/al.rlmba.difficulty_weight=1.0,rlmba_weaker=rlmba{tuned}/modality.favour=weaker"
REST="entropy,least_confidence,bald,coreset,kmeans,rlmba_absolute=rlmba{tuned}/al.rlmba.reward=absolute,rlmba_incremental=rlmba{tuned}/al.rlmba.reward=incremental"
HARD="random,margin,badge,bmmal,rlmba_tuned=rlmba{tuned},rlmba_prior=rlmba{tuned}/al.rlmba.learning_rate=0/al.rlmba.entropy_weight=0"
# The headroom rows (plans, "Headroom"): upper bounds that read labels no learner has.
ORACLE="oracle_candidates=greedy_oracle{tuned}/al.greedy_oracle.source=candidates,oracle_pool=greedy_oracle{tuned}/al.greedy_oracle.source=pool"
# The pretrained-policy rows (plans, "Pretrained-policy rows"): RL-MBA (tuned) with the
# policy's modality-invariant inputs, untrained, and started from each pretraining.
INVARIANT="rlmba{tuned}/al.rlmba.policy_inputs=invariant"
PRETRAINED="rlmba_invariant=$INVARIANT"
for src in mfeat av_digits; do
  PRETRAINED+=",rlmba_pretrained_$src=$INVARIANT/al.rlmba.init_from=$out/pretrain/$src"
done

record_commit() {  # record_commit DIR: the commit whose code makes DIR's runs (compare.py reads it)
  local sha; sha=$(git rev-parse HEAD)
  mkdir -p "$1"
  if [ -f "$1/commit.txt" ] && [ "$(cat "$1/commit.txt")" != "$sha" ]; then
    echo "campaign.sh: $1 holds runs made at $(cat "$1/commit.txt"), not at $sha (CODE);" \
      "a sweep folder is one commit's: give another OUT or run at that commit" >&2
    exit 2
  fi
  echo "$sha" > "$1/commit.txt"
}

missing() {  # missing RESULTS ENTRIES SEEDS REFS -> the entries with a seed not recorded
  python "$here/launch/missing_rows.py" "$1/seeds.jsonl" "$2" "$3" "$4"
}

sweep() {  # sweep DIR CONFIG TUNED ENTRIES SEEDS REFERENCES [config flags...]
  local dir=$1 cfg=$2 tuned=$3 entries=$4 seeds=$5 refs=$6; shift 6
  local only=(); [ -n "${REPORT_ONLY:-}" ] && only=(--report_only)
  # A campaign continued in a later session: rows whose seeds the study's committed
  # records already hold are not run again (references still are, when a row needs them).
  if [ -z "${REPORT_ONLY:-}" ]; then
    entries=$(missing "$(results_of "$dir")" "$entries" "$seeds" "$refs")
    if [ -z "$entries" ]; then
      echo "$seeds: every row recorded in $(results_of "$dir")/seeds.jsonl" >> "$dir.log"
      return 0
    fi
  fi
  record_commit "$dir"
  "${SWEEP[@]}" --config="$cfg" --workdir="$dir" --tuned="$tuned" \
    --strategies="$entries" --seed_list="$seeds" --references="$refs" --workers=1 \
    --seeds_per_program=10 --progress=off "${only[@]}" "$@" >> "$dir.log" 2>&1
}

pretrain_policies() {  # the earlier study's pretraining (issue 18), resumable, on both sources
  [ -n "${REPORT_ONLY:-}" ] && return 0
  local src
  for src in "${!PRETRAIN_UPDATES[@]}"; do  # a finished one kept from an earlier machine
    if [ ! -e "$out/pretrain/$src" ] && [ -d "$kept_pretraining/$src" ]; then
      mkdir -p "$out/pretrain" && cp -r "$kept_pretraining/$src" "$out/pretrain/$src"
    fi
  done
  python launch/pretrain_policy.py --config=configs/mfeat.py:tuned --workdir="$out/pretrain/mfeat" \
    --updates=${PRETRAIN_UPDATES[mfeat]} --batch=16 --learning_rate=3e-3 --evaluate_episodes=128 --progress=off \
    >> "$out/pretrain_mfeat.log" 2>&1
  python launch/pretrain_policy.py --config=configs/av_digits.py:tuned \
    --config.data.manual_dir="$fsdd" --workdir="$out/pretrain/av_digits" \
    --updates=${PRETRAIN_UPDATES[av_digits]} --batch=16 --learning_rate=3e-3 --evaluate_episodes=128 --progress=off \
    >> "$out/pretrain_av_digits.log" 2>&1
}

blocks() {  # blocks FIRST COUNT -> "1000-1009 1010-1019 ..."
  local first=$1 count=$2 b
  for ((b = first; b < first + count; b += 10)); do echo "$b-$((b + 9))"; done
}

with_toggles() {  # the tuned config with AMCB and EFDA each set against the search's choice
  local tuned=$1
  python - "$tuned" <<'EOF'
import json, sys
chosen = json.load(open(sys.argv[1]))["chosen"]["overrides"]
amcb = str(chosen.get("modality.amcb", "true")).lower() == "true"
efda = str(chosen.get("al.rlmba.efda", "true")).lower() == "true"
print(f"rlmba_amcb_{'off' if amcb else 'on'}=rlmba{{tuned}}/modality.amcb={str(not amcb).lower()},"
      f"rlmba_efda_{'off' if efda else 'on'}=rlmba{{tuned}}/al.rlmba.efda={str(not efda).lower()}")
EOF
}

run_stage() {
  local stage=$1 seed_block
  if [[ $stage == A* ]] && [ ! -d "$fsdd" ]; then
    echo "campaign.sh: stage $stage needs the Free Spoken Digit recordings; $fsdd is not a" \
      "folder: set FSDD to them (../shared/data/fsdd)" >&2
    exit 2
  fi
  case "$stage" in
    M1)  # mfeat: baselines, RL-MBA, mechanism rows; 50 report seeds
      for seed_block in $(blocks 1000 50); do
        sweep "$out/mfeat" configs/mfeat.py:paper "$MFEAT_TUNED" \
          "$BASE,$CORE,$MECH,$(with_toggles $MFEAT_TUNED)" "$seed_block" gcnal,badge,bmmal
      done ;;
    M2)  # mfeat: the other baselines and rewards; 20 report seeds
      for seed_block in $(blocks 1000 20); do
        sweep "$out/mfeat" configs/mfeat.py:paper "$MFEAT_TUNED" "$REST" "$seed_block" gcnal,badge,bmmal
      done ;;
    MH)  # mfeat's harder settings; 50 report seeds
      for seed_block in $(blocks 1000 50); do
        sweep "$out/mfeat_longtail" configs/mfeat.py:paper "$MFEAT_TUNED" "$HARD" "$seed_block" \
          badge,bmmal --config.data.pool_imbalance=10.0
        sweep "$out/mfeat_noisy" configs/mfeat.py:paper "$MFEAT_TUNED" "$HARD" "$seed_block" \
          badge,bmmal --config.data.label_noise=0.1
      done ;;
    AS)  # av_digits: the search on validation, tuning seeds 100-102 (space fixed in the plan)
      if [ -z "${REPORT_ONLY:-}" ] && [ "$AV_TUNED" != "$here/results/av_digits_paired/tuning.json" ]; then
        "${TUNE[@]}" --config=configs/av_digits.py:paper --workdir="$out/av_digits/tune" \
          --trials=8 --seeds=100,101,102 --include="$MFEAT_TUNED" \
          --refine_top=1 --refine_space='al.rlmba.diversity=labelled;modality.amcb=true|false;al.rlmba.efda=true|false' \
          --workers=1 --progress=off --config.data.manual_dir="$fsdd" >> "$out/av_digits_tune.log" 2>&1
      fi ;;
    A1)  # av_digits: baselines, RL-MBA; 50 report seeds
      for seed_block in $(blocks 1000 50); do
        sweep "$out/av_digits" configs/av_digits.py:paper "$AV_TUNED" "$BASE,$CORE" "$seed_block" \
          gcnal,badge,bmmal --config.data.manual_dir="$fsdd"
      done ;;
    AH)  # av_digits' harder settings; 50 report seeds
      for seed_block in $(blocks 1000 50); do
        sweep "$out/av_digits_longtail" configs/av_digits.py:paper "$AV_TUNED" "$HARD" "$seed_block" \
          badge,bmmal --config.data.manual_dir="$fsdd" --config.data.pool_imbalance=10.0
        sweep "$out/av_digits_noisy" configs/av_digits.py:paper "$AV_TUNED" "$HARD" "$seed_block" \
          badge,bmmal --config.data.manual_dir="$fsdd" --config.data.label_noise=0.1
      done ;;
    A2)  # av_digits: mechanism rows (50 seeds) and the other baselines (20 seeds)
      for seed_block in $(blocks 1000 50); do
        sweep "$out/av_digits" configs/av_digits.py:paper "$AV_TUNED" "$MECH,$(with_toggles $AV_TUNED)" \
          "$seed_block" gcnal,badge,bmmal --config.data.manual_dir="$fsdd"
      done
      for seed_block in $(blocks 1000 20); do
        sweep "$out/av_digits" configs/av_digits.py:paper "$AV_TUNED" "$REST" "$seed_block" \
          gcnal,badge,bmmal --config.data.manual_dir="$fsdd"
      done ;;
    MO)  # mfeat's headroom rows (greedy oracle over RL-MBA's candidates / the pool); 50 seeds
      for seed_block in $(blocks 1000 50); do
        sweep "$out/mfeat_oracle" configs/mfeat.py:paper "$MFEAT_TUNED" "$ORACLE" "$seed_block" \
          gcnal,badge,bmmal
      done ;;
    AO)  # av_digits' headroom rows; 50 seeds
      for seed_block in $(blocks 1000 50); do
        sweep "$out/av_digits_oracle" configs/av_digits.py:paper "$AV_TUNED" "$ORACLE" \
          "$seed_block" gcnal,badge,bmmal --config.data.manual_dir="$fsdd"
      done ;;
    MP)  # mfeat: the pretrained-policy rows; 50 seeds. Their references run again at this
      # commit: compare.py then checks they reproduce the records kept from 1ad8ba9.
      pretrain_policies
      for seed_block in $(blocks 1000 50); do
        sweep "$out/mfeat_pretrained" configs/mfeat.py:paper "$MFEAT_TUNED" \
          "gcnal,badge,bmmal,$PRETRAINED" "$seed_block" gcnal,badge,bmmal
      done ;;
    AP)  # av_digits: the pretrained-policy rows; 50 seeds. Like MP, their references run
      # again at this commit (A1's runs are gone with their machine; compare.py checks these
      # reproduce A1's records).
      pretrain_policies
      for seed_block in $(blocks 1000 50); do
        sweep "$out/av_digits_pretrained" configs/av_digits.py:paper "$AV_TUNED" \
          "gcnal,badge,bmmal,$PRETRAINED" "$seed_block" gcnal,badge,bmmal \
          --config.data.manual_dir="$fsdd"
      done ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
  echo "stage $stage done $(date -u +%FT%TZ)" >> "$out/commits.txt"
}

for stage in $stages; do
  run_stage "$stage"
done
