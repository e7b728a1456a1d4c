r"""What progress reporting costs: the default mfeat experiment's training time with the
per-epoch progress callback on and off (same machine, same process, compile cache warm).

  python launch/progress_cost.py --repeats=3 --out=results/progress_cost.json

Each setting runs the whole default experiment (6 rounds of 50 labels, 100 epochs per
round) ``repeats`` times in fresh workdirs after one warm-up run, the two settings taking
turns; the figure is the sum of ``train_seconds`` over the rounds (the compiled training
program, the only place the callback lives), median over repeats, with each pair's
difference to show the machine's noise.
"""

import json
import os
import statistics
import tempfile
import time

from absl import app, flags

from rlmba_jax.experiment import run
from rlmba_jax.experiment.config import default_config

_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs per setting (after one warm-up each).")
_OUT = flags.DEFINE_string("out", "results/progress_cost.json", "Where to write the figures.")


def _train_seconds(progress: str) -> tuple[float, float]:
  config = default_config()
  config.data.source = "files"
  config.eval.progress = progress
  config.eval.tensorboard = False
  t0 = time.time()
  with tempfile.TemporaryDirectory() as workdir:
    run(config, workdir)
    with open(os.path.join(workdir, "rounds.jsonl")) as f:
      seconds = sum(json.loads(l)["train_seconds"] for l in f)
  return seconds, time.time() - t0


def main(argv):
  del argv
  settings = ("off", "on")
  for progress in settings:
    _train_seconds(progress)  # warm-up: compile (or load from the cache)
  # Interleaved (off, on, off, on, ...), so a slow spell of the machine hits both alike.
  runs = {progress: [] for progress in settings}
  for _ in range(_REPEATS.value):
    for progress in settings:
      runs[progress].append(_train_seconds(progress))
  results = {}
  for progress in settings:
    results[progress] = {
        "train_seconds": [round(r[0], 3) for r in runs[progress]],
        "wall_seconds": [round(r[1], 3) for r in runs[progress]],
        "median_train_seconds": round(statistics.median(r[0] for r in runs[progress]), 3)}
  off, on = results["off"]["median_train_seconds"], results["on"]["median_train_seconds"]
  results["overhead_percent"] = round(100 * (on - off) / off, 2)
  # The spread of the paired differences says what the median's difference is worth.
  paired = [100 * (b[0] - a[0]) / a[0] for a, b in zip(runs["off"], runs["on"])]
  results["paired_overhead_percent"] = [round(p, 1) for p in paired]
  results["machine"] = f"{os.cpu_count()} CPU cores"
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(results, f, indent=2)
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  app.run(main)
