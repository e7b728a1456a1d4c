r"""Active learning on av_digits: FSDD spoken digits + 8x8 digit images (CPU, minutes).

  python -m rlmba_jax.main --config=configs/av_digits.py --workdir=runs/av_digits \
      --config.data.manual_dir=../shared/data/fsdd --config.al.strategy=entropy

The first run builds the ArrayRecord copy (log-mel spectrograms of the 3,000 recordings).
The test set is FSDD's official one (300 recordings); validation 200, pool 2,500.
"""

from rlmba_jax.experiment.config import default_config


def get_config(arg=None):
  config = default_config()
  config.data.name = "av_digits"
  config.data.modalities = "audio,image"
  config.data.test_size = 300
  config.data.val_size = 200
  config.model.width = 64
  config.model.conv_channels = (16, 32)
  config.train.num_epochs = 30
  config.al.initial_size = 50
  config.al.budget_per_round = 50
  config.al.rounds = 5
  if arg == "runlocal":
    config.al.rounds = 2
    config.train.num_epochs = 5
  elif arg not in (None, ""):
    raise ValueError(f"configs/av_digits.py takes no argument or 'runlocal', got {arg!r}")
  return config
