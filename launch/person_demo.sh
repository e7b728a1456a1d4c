#!/usr/bin/env bash
# A person in the loop from the command line, on your own arrays (README, "Your own data,
# labelled by a person"): three rounds after the initial set, with a rejected answers file,
# skips, a process killed right after a round's answers were committed, and a round ended
# early. The "person" is SimulatedPerson writing the answers files a human would write.
#
#   bash launch/person_demo.sh [OUT]       # OUT default results/own_data_demo
#
# Writes OUT/transcript.txt (every command, its exit code and its last line) and OUT/ledger.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/own_data_demo}
WORK=$(mktemp -d)
DATA=$WORK/my_data
RUN=$WORK/run
mkdir -p "$OUT"
T=$OUT/transcript.txt
: > "$T"
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$WORK/xla}
CMD=(python -m rlmba_jax.main --config=configs/arrays.py:person --workdir="$RUN"
     --config.data.manual_dir="$DATA" --config.al.rounds=3 --config.al.strategy=margin
     --config.train.num_epochs=40)

say() { echo "$*" | tee -a "$T"; }
step() {  # step "what" command...: runs it, records the exit code and the last line
  say ""; say "## $1"; shift
  say "\$ ${*//$WORK/WORK}"
  local out rc
  out=$("$@" 2>&1); rc=$?
  say "exit $rc: $(echo "$out" | grep -v '^\s*$' | tail -1 | sed "s#$WORK#WORK#g")"
}
answer() {  # answer ROUND SKIP FRACTION: the simulated person answers (part of) a round
  python - "$RUN" "$DATA" "$1" "$2" "$3" <<'EOF'
import csv, sys
from rlmba_jax.person import SimulatedPerson
from rlmba_jax.person import files
run, data, r, skip, fraction = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
truth = {int(row["id"]): row["label"] for row in csv.DictReader(open(f"{data}/truth.csv"))}
SimulatedPerson(truth, skip=skip, answer_fraction=fraction, seed=7)(
    files.queries_path(run, r), files.labels_path(run, r), r)
EOF
}

step "your data: examples.csv (unlabelled pool), fou.npy, kar.npy" \
  python -c "from rlmba_jax.data.arrays import write_demo_folder as w; w('$DATA')"
step "round 0: the initial set is queried; the run stops (exit code 3)" "${CMD[@]}"
say "queries: $(head -1 "$RUN/queries/round_000.csv")"
answer 0 0 1
step "answers for round 0 are in; the run trains and stops at round 1" "${CMD[@]}"
python - "$RUN" <<'EOF'
import sys
from rlmba_jax.person import files
asked, _ = files.read_queries(files.queries_path(sys.argv[1], 1))
files.write_answers(files.labels_path(sys.argv[1], 1), [(asked[0], "seven"), (asked[1], "sevn")])
EOF
before=$(sha256sum "$RUN/ledger.jsonl" | cut -c1-16)
step "a bad answers file (a misspelt class) is refused, naming file and line" "${CMD[@]}"
say "ledger unchanged: $([ "$before" = "$(sha256sum "$RUN/ledger.jsonl" | cut -c1-16)" ] && echo yes || echo NO)"
rm "$RUN/labels/round_001.csv"
answer 1 0.2 1
step "round 1 answered with skips; the process is killed (SIGKILL) right after the answers are committed to the ledger" \
  python -c "
import os, signal
from rlmba_jax.experiment import run
from configs.arrays import get_config
c = get_config('person'); c.data.manual_dir = '$DATA'; c.al.rounds = 3; c.al.strategy = 'margin'; c.train.num_epochs = 40
run(c, '$RUN', phase_callback=lambda r, p: os.kill(os.getpid(), signal.SIGKILL) if (r, p) == (1, 'labelled') else None)"
say "ledger lines after the kill: $(wc -l < "$RUN/ledger.jsonl")"
step "the same command continues from the ledger: trains round 1, stops at round 2" "${CMD[@]}"
answer 2 0 0.5
step "half of round 2 answered: the round waits for the rest" "${CMD[@]}"
step "the round is ended with what is there (--close_round); round 3 is queried" "${CMD[@]}" --close_round
answer 3 0.1 1
step "round 3 answered: the run finishes" "${CMD[@]}"
cp "$RUN/ledger.jsonl" "$OUT/ledger.jsonl"
python - "$RUN" <<'EOF' | tee -a "$T"
import json, sys
print("\n## the ledger afterwards (what the person said)")
for line in open(f"{sys.argv[1]}/ledger.jsonl"):
  e = json.loads(line)
  labels = e.get("labels") or []
  print(f"round {e['round']}: {len(e['ids'])} queried, {sum(l is not None for l in labels)} "
        f"labelled, skipped {e.get('skipped', [])}, unanswered "
        f"{sum(l is None for l in labels) - len(e.get('skipped', []))}; first: "
        f"{e['ids'][0]} -> {labels[0] if labels else None}")
print("\n## rounds.jsonl")
for line in open(f"{sys.argv[1]}/rounds.jsonl"):
  r = json.loads(line)
  print(f"round {r['round']}: {r['num_labeled']} labels, test top-1 {r['test_top1']:.3f}, "
        f"skipped {r.get('skipped', 0)}, unanswered {r.get('unanswered', 0)}")
EOF
rm -rf "$WORK"
