r"""Do two sweeps' runs of the same rows and seeds write the same records? (The check before
a campaign's rows continue at another commit.)

  python launch/same_records.py --a=runs/campaign/av_digits --b=runs/check447/av_digits \
      --rows=random,deepfool --seeds=1000-1009

For every row and seed, ``ledger.jsonl`` and ``rounds.jsonl`` of the two runs are compared
line by line, parsed, after leaving out the ``*_seconds`` timings and any field named in
``--ignore`` (by default the stopping signals, which commits before 447e770 did not write).
Prints one line per file and exits 1 when any differs or is missing.
"""

import os
import sys

from absl import app, flags
from behaviour_check import without_timings  # launch/, beside this script

from rlmba_jax.experiment.seeds import parse_seeds
from rlmba_jax.studies.sweeps import seed_run_folders

_A = flags.DEFINE_string("a", None, "One sweep folder (holds runs/<row>/...).")
_B = flags.DEFINE_string("b", None, "The other sweep folder.")
_ROWS = flags.DEFINE_list("rows", None, "The rows to compare.")
_SEEDS = flags.DEFINE_string("seeds", None, "The seeds to compare (1000-1009 or a list).")
_IGNORE = flags.DEFINE_list("ignore", ["stopping", "stop_set_predictions"],
                            "rounds.jsonl fields left out besides the *_seconds timings.")


def records(path: str, ignore) -> list[str]:
  """A ledger or rounds file's lines without timings and ``ignore`` (canonical JSON)."""
  with open(path) as f:
    return [without_timings(line, ignore) for line in f if line.strip()]


def main(argv):
  del argv
  differ = 0
  for row in _ROWS.value:
    runs_a = seed_run_folders(os.path.join(_A.value, "runs", row))
    runs_b = seed_run_folders(os.path.join(_B.value, "runs", row))
    for seed in parse_seeds(_SEEDS.value):
      for name in ("ledger.jsonl", "rounds.jsonl"):
        paths = [os.path.join(runs[seed], name) if seed in runs else None
                 for runs in (runs_a, runs_b)]
        if not all(p and os.path.exists(p) for p in paths):
          print(row, seed, name, "MISSING", paths)
          differ += 1
          continue
        same = records(paths[0], _IGNORE.value) == records(paths[1], _IGNORE.value)
        differ += not same
        print(row, seed, name, "identical" if same else "DIFFERENT")
  print("all identical" if not differ else f"{differ} files differ or are missing")
  sys.exit(1 if differ else 0)


if __name__ == "__main__":
  flags.mark_flags_as_required(["a", "b", "rows", "seeds"])
  app.run(main)
