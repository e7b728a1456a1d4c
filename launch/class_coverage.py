r"""Which classes (and, with a noisy person, which wrong answers) each strategy labelled,
from a sweep's run folders (``rlmba_jax.studies.class_coverage``): the diagnostic in the
readings of the harder settings.

  python launch/class_coverage.py --sweep=runs/campaign/mfeat_longtail \
      --out=results/mfeat_paired/longtail --report_seeds=1000-1049

Writes ``OUT/class_coverage.md`` and ``OUT/class_coverage.json`` (every per-seed figure).
"""

import json
import os

from absl import app, flags

from rlmba_jax.experiment.seeds import parse_seeds
from rlmba_jax.studies.class_coverage import coverage, coverage_report

_SWEEP = flags.DEFINE_string("sweep", None, "The sweep folder (holds runs/<row>/...).")
_OUT = flags.DEFINE_string("out", None, "The study's results folder.")
_REPORT_SEEDS = flags.DEFINE_string("report_seeds", "", "Seeds to read (1000-1049 or a "
                                    "list; '' = every finished run).")
_REFERENCE = flags.DEFINE_string("reference", "rlmba_tuned", "The row the others are paired "
                                 "against.")


def main(argv):
  del argv
  seeds = set(parse_seeds(_REPORT_SEEDS.value)) if _REPORT_SEEDS.value else None
  result = coverage(_SWEEP.value, seeds)
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, "class_coverage.json"), "w") as f:
    json.dump(result, f, indent=1, sort_keys=True)
  text = coverage_report(result, _REFERENCE.value)
  with open(os.path.join(_OUT.value, "class_coverage.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  flags.mark_flags_as_required(["sweep", "out"])
  app.run(main)
