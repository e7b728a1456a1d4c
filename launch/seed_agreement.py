r"""How far a seed-batched run's seeds agree with other runs of the same seeds.

  python launch/seed_agreement.py --runs=runs/agree/margin_w0 \
      --reference=runs/campaign/mfeat/runs/margin --label=margin --out=results/seed_agreement

Both folders may hold single runs (``seed<k>/``), a seed-batched workdir or seed blocks
(``studies.sweeps.seed_run_folders``). For the seeds both have: the share of seeds whose
ledgers are identical, per round the share of picks that are the same examples, and the
paired difference of test AUC (runs - reference) with its 95 % t and bootstrap intervals.
Appends a JSON line to ``OUT/agreement.jsonl``.
"""

import json
import os

from absl import app, flags
import numpy as np

from rlmba_jax.experiment.summary import area_under_curve
from rlmba_jax.studies import report, stats
from rlmba_jax.studies.sweeps import seed_run_folders


_RUNS = flags.DEFINE_string("runs", None, "The runs to check.")
_REFERENCE = flags.DEFINE_string("reference", None, "The runs to compare with.")
_LABEL = flags.DEFINE_string("label", "", "A name for the line.")
_OUT = flags.DEFINE_string("out", "results/seed_agreement", "Output folder.")


def _folders(path):
  return seed_run_folders(path)  # an entry's folder, or one seed-batched workdir


def _ledger(folder):
  with open(os.path.join(folder, "ledger.jsonl")) as f:
    return [json.loads(line)["ids"] for line in f if line.strip()]


def _auc(folder):
  recs = report.read_rounds(folder)
  return area_under_curve([r["num_labeled"] for r in recs], [r["test_top1"] for r in recs])


def agreement(runs: str, reference: str) -> dict:
  mine, theirs = _folders(runs), _folders(reference)
  seeds = sorted(s for s in set(mine) & set(theirs)
                 if os.path.exists(os.path.join(mine[s], "summary.json"))
                 and os.path.exists(os.path.join(theirs[s], "summary.json")))
  same_ledger, per_round = 0, []
  for s in seeds:
    a, b = _ledger(mine[s]), _ledger(theirs[s])
    same_ledger += a == b
    per_round.append([len(set(x) & set(y)) / len(y) for x, y in zip(a, b)])
  rounds = min(len(r) for r in per_round) if per_round else 0
  shares = np.asarray([r[:rounds] for r in per_round])
  c = stats.compare({s: _auc(mine[s]) for s in seeds}, {s: _auc(theirs[s]) for s in seeds})
  return {"seeds": len(seeds), "identical_ledgers": same_ledger,
          "same_picks_per_round": shares.mean(axis=0).round(4).tolist() if rounds else [],
          "auc_diff_mean": c.mean, "auc_diff_t_ci": [c.t_low, c.t_high],
          "auc_diff_bootstrap_ci": [c.boot_low, c.boot_high], "t_p": c.t_p,
          "ci_covers_zero": bool(c.t_low <= 0 <= c.t_high)}


def main(argv):
  del argv
  row = {"label": _LABEL.value, "runs": _RUNS.value, "reference": _REFERENCE.value,
         **agreement(_RUNS.value, _REFERENCE.value)}
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, "agreement.jsonl"), "a") as f:
    f.write(json.dumps(row) + "\n")
  print(json.dumps(row))


if __name__ == "__main__":
  flags.mark_flags_as_required(["runs", "reference"])
  app.run(main)
