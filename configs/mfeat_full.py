r"""Full-data reference on mfeat: every pool label at once, no active learning.

The supervised upper bound every learning curve is read against (Trusted Multi-View
Classification's 1600/400 protocol; here 1,400 pool + 200 validation / 400 test).

  python -m rlmba_jax.main --config=configs/mfeat_full.py:tmc --workdir=runs/full_tmc
  python launch/full_data.py --fusions=concat,tmc,evidence --seeds=5 --workdir=runs/full

The argument picks the fused prediction: ``concat`` (softmax heads, linear head on the
concatenated features), ``tmc`` (evidential heads, Dempster-Shafer combination) or
``evidence`` (evidential heads, RL-MBA's weighted evidence fusion, uniform weights).
"""

from rlmba_jax.config_defaults import default_config


def get_config(arg=None):
  fusion = arg or "concat"
  if fusion not in ("concat", "tmc", "evidence"):
    raise ValueError(f"configs/mfeat_full.py takes concat, tmc or evidence; got {arg!r}")
  config = default_config()
  config.model.fusion = fusion
  config.model.head = "softmax" if fusion == "concat" else "evidential"
  config.al.initial_size = 1400  # the whole pool
  config.al.rounds = 0
  config.train.num_epochs = 100
  config.train.annealing_epochs = 50.0
  return config
