r"""Active learning on the embedded UCI Multiple Features digits (six views, CPU, seconds).

  python -m rlmba_jax.main --config=configs/mfeat.py --workdir=/tmp/rlmba/mfeat
  python -m rlmba_jax.main --config=configs/mfeat.py:runlocal --workdir=/tmp/rlmba/tiny

``runlocal`` shrinks everything (two rounds, few epochs) for smoke tests. ``curves`` is
the comparison protocol of the strategy sweeps: RL-MBA's model (evidential heads, weighted
evidence fusion with AMCB weights) for every strategy, 20 initial labels, 8 rounds of 10
(20 -> 100 labels, where accuracy is still well below the full-data 99%).
"""

from rlmba_jax.experiment.config import default_config


def get_config(arg=None):
  config = default_config()
  if arg == "runlocal":
    config.al.initial_size = 20
    config.al.budget_per_round = 20
    config.al.rounds = 2
    config.train.num_epochs = 5
  elif arg == "curves":
    config.model.head = "evidential"
    config.model.fusion = "evidence"
    config.al.initial_size = 20
    config.al.budget_per_round = 10
    config.al.rounds = 8
  elif arg not in (None, ""):
    raise ValueError(f"configs/mfeat.py takes no argument, 'runlocal' or 'curves', got {arg!r}")
  return config
