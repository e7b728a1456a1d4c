#!/usr/bin/env bash
# The paired studies' campaign (results/{mfeat,av_digits}_paired/plan.md) on one machine with
# two cores: two queues of stages, each stage's rows at the commit its plan names, from
# worktrees beside this checkout, orchestrated by launch/campaign.sh at this checkout's
# commit (records, plans and the skip of recorded rows). Run it again on a new machine: it
# makes what is missing (worktrees, their virtual environments) and the campaign skips every
# (row, seed) of the committed records.
#
#   bash launch/campaign_queues.sh      # set up and start both queues in the background
#   # it merges the finished runs into results/ every 20 minutes; before the session ends:
#   MERGE=1 OUT=$WORK/campaign/runs/campaign bash launch/campaign.sh   # and commit results/
#
# Env: WORK (the folder beside this checkout that holds the worktrees: ..), MERGE_EVERY
# (minutes between merges of the finished runs into this checkout's results/: 20), OUT
# ($WORK/campaign/runs/campaign), FSDD (../shared/data/fsdd). Logs: $OUT/../queue_*.out and
# each sweep's $OUT/<sweep>.log; progress: python launch/campaign_progress.py $OUT.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(realpath -m "${WORK:-$here/..}")
out=$(realpath -m "${OUT:-$work/campaign/runs/campaign}")
fsdd=$(realpath -m "${FSDD:-$here/../shared/data/fsdd}")
if [ ! -d "$fsdd" ]; then
  echo "campaign_queues.sh: the av_digits stages need the Free Spoken Digit recordings;" \
    "$fsdd is not a folder: set FSDD to them" >&2
  exit 2
fi

# The commits the plans name for each stage (their "Changes after the start" say why).
declare -A AT=([campaign]=1ad8ba98cb8fce0f082a00a4060c51c7ea8f85c6   # A1 AH A2 (and M*)
               [oracle]=447e770e056dd5f26e82a3566450c11f5202265d     # MO AO
               [pretrain]=e63a64876d50e4073db50ed3db0d0448c30a11ae)  # MP AP
QUEUE_FIRST=("campaign:A1 AH A2" "pretrain:AP")
QUEUE_NEXT=("oracle:MO" "pretrain:MP" "oracle:AO")

if pgrep -f "campaign.sh|queue_first.sh|queue_next.sh" > /dev/null; then
  echo "campaign_queues.sh: a campaign is running already (its queues); stop it" \
    "first (its runs resume from their checkpoints)" >&2
  exit 2
fi

worktree() {  # worktree NAME COMMIT: $work/NAME at COMMIT with its own virtual environment
  local dir=$work/$1 want=$2
  if [ ! -d "$dir" ]; then
    git -C "$here" worktree add --detach "$dir" "$want" > /dev/null
  fi
  local have; have=$(git -C "$dir" rev-parse HEAD)
  if [ "$have" != "$want" ]; then
    echo "campaign_queues.sh: $dir is at $have, the plans name $want" >&2
    exit 2
  fi
  if [ ! -x "$dir/.venv/bin/python" ]; then
    python3 -m venv "$dir/.venv"
    "$dir/.venv/bin/pip" install -q -e "$dir[test]"
  fi
}

for name in "${!AT[@]}"; do
  worktree "$name" "${AT[$name]}"
done
# The orchestrator: this checkout's commit, in a worktree of its own, so that work on this
# checkout does not change a script bash is reading.
orchestrate=$work/orchestrate
if [ -d "$orchestrate" ]; then
  git -C "$orchestrate" checkout -q --detach "$(git -C "$here" rev-parse HEAD)"
else
  git -C "$here" worktree add --detach "$orchestrate" HEAD > /dev/null
fi
mkdir -p "$out"

queue() {  # queue NAME ENTRY... (ENTRY = worktree:stages): one background process, in order
  local name=$1 entry; shift
  local script=$out/../queue_$name.sh
  {
    echo "#!/usr/bin/env bash"
    echo "# written by launch/campaign_queues.sh at $(git -C "$here" rev-parse HEAD)"
    echo "set -u"
    for entry in "$@"; do
      local tree=${entry%%:*} stages=${entry#*:}
      echo "PATH=$work/$tree/.venv/bin:\$PATH CODE=$work/$tree OUT=$out FSDD=$fsdd" \
        "STAGES=\"$stages\" bash $orchestrate/launch/campaign.sh"
    done
  } > "$script"
  setsid nohup bash "$script" > "$out/../queue_$name.out" 2>&1 < /dev/null &
  echo "queue $name: $* (log $out/../queue_$name.out)"
}

queue first "${QUEUE_FIRST[@]}"
queue next "${QUEUE_NEXT[@]}"

# Every MERGE_EVERY minutes (20) while a queue runs, and once after: the finished runs go to
# this checkout's records (uncommitted), with the Python that started this script, so a
# session that ends suddenly loses at most that much of the records (commit them).
python=$(command -v python || command -v python3)
if pgrep -f "merge_loop.sh" > /dev/null; then  # an earlier start's loop goes on with these queues
  echo "records: the merge loop already running goes on (log $out/../merge_loop.out)"
else
  {
    echo "#!/usr/bin/env bash"
    echo "set -u"
    echo "while pgrep -f 'queue_first.sh|queue_next.sh' > /dev/null; do"
    echo "  sleep $(( ${MERGE_EVERY:-20} * 60 ))"
    echo "  echo \"== \$(date -u +%FT%TZ)\""
    echo "  PATH=$(dirname "$python"):\$PATH MERGE=1 OUT=$out bash $here/launch/campaign.sh"
    echo "done"
    echo "PATH=$(dirname "$python"):\$PATH MERGE=1 OUT=$out bash $here/launch/campaign.sh"
  } > "$out/../merge_loop.sh"
  setsid nohup bash "$out/../merge_loop.sh" > "$out/../merge_loop.out" 2>&1 < /dev/null &
  echo "records merged into $here/results every ${MERGE_EVERY:-20} min (log $out/../merge_loop.out)"
fi
# Lowest priority for the whole session's campaign, so the work beside it stays responsive.
sleep 5
for pid in $(pgrep -f "queue_first.sh|queue_next.sh|campaign.sh|rlmba_jax.sweep|launch/sweep.py|pretrain_policy"); do
  renice -n 19 -p "$pid" > /dev/null 2>&1 || true
  echo 19 > "/proc/$pid/autogroup" 2> /dev/null || true
done
