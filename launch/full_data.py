r"""Full-data reference runs: fusions x seeds, then a mean +- std table.

  python launch/full_data.py --fusions=concat,tmc,evidence --seeds=5 --workdir=runs/full

Each run lives in ``WORKDIR/<fusion>/seed<k>`` and is resumable; re-running skips finished
runs. Prints one JSON line per run and writes ``WORKDIR/full_data.md``.
"""

import importlib.util
import json
import os

import numpy as np
from absl import app
from absl import flags

from rlmba_jax.experiment import run
from rlmba_jax.experiment.logs import configure_logging

_FUSIONS = flags.DEFINE_list("fusions", ["concat", "tmc", "evidence"], "Fused predictions.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds 0..N-1.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/full", "Output folder.")
_CONFIG = flags.DEFINE_string("config", os.path.join(os.path.dirname(__file__), "..",
                                                     "configs", "mfeat_full.py"),
                              "Config file taking the fusion as its argument.")


def _load_config(path, arg):
  spec = importlib.util.spec_from_file_location("full_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def main(argv):
  del argv
  configure_logging()
  rows = []
  for fusion in _FUSIONS.value:
    accs = []
    for seed in range(_SEEDS.value):
      config = _load_config(_CONFIG.value, fusion)
      config.seed = seed
      summary = run(config, os.path.join(_WORKDIR.value, fusion, f"seed{seed}"))
      final = summary["final"]
      accs.append(final["test_top1"])
      print(json.dumps({"fusion": fusion, "seed": seed, "test_top1": final["test_top1"],
                        "test_nll": final["test_nll"], "test_ece": final["test_ece"],
                        "train_seconds": final["train_seconds"]}), flush=True)
    rows.append((fusion, float(np.mean(accs)), float(np.std(accs)), len(accs)))
  lines = ["| fusion | test top-1 (mean +- std) | seeds |", "| --- | --- | --- |"]
  lines += [f"| {f} | {100 * m:.2f} +- {100 * s:.2f} % | {n} |" for f, m, s, n in rows]
  table = "\n".join(lines) + "\n"
  with open(os.path.join(_WORKDIR.value, "full_data.md"), "w") as f:
    f.write(table)
  print(table)


if __name__ == "__main__":
  app.run(main)
