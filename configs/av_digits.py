r"""Active learning on av_digits: FSDD spoken digits + 8x8 digit images (CPU, minutes).

  python -m rlmba_jax.main --config=configs/av_digits.py --workdir=runs/av_digits \
      --config.data.manual_dir=../shared/data/fsdd --config.al.strategy=entropy

The first run builds the ArrayRecord copy (log-mel spectrograms of the 3,000 recordings).
20 initial labels, 20 per round, 6 rounds (20 -> 140 labels).
The test set is FSDD's official one (300 recordings); validation 200, pool 2,500.

``paper``: the comparison protocol (see configs/mfeat.py): one classifier for every strategy,
a softmax multimodal head over the concatenated features plus an evidential head per
modality; AMCB and the weighted evidence fusion act in RL-MBA's selection only; 4 rounds
(20 -> 100 labels).

  python -m rlmba_jax.sweep --config=configs/av_digits.py:paper --seeds=5 \
      --workdir=runs/av_digits_paper --config.data.manual_dir=../shared/data/fsdd \
      --strategies=random,margin,badge,bmmal,gcnal,rlmba
"""

from rlmba_jax.config_defaults import default_config, paper_protocol, parse_arg


# RL-MBA's values the paper leaves open, chosen on av_digits' validation (tuning seeds 100-102, never test) by
#   FSDD=../shared/data/fsdd python -m rlmba_jax.tune --config=configs/av_digits.py:paper \
#       --workdir=runs/av_digits_paper/tune --trials=8 --seeds=100,101,102 \
#       --include=results/mfeat_paper/tuning.json --refine_top=1 \
#       --refine_space='al.rlmba.diversity=labelled;modality.amcb=true|false;al.rlmba.efda=true|false' \
#       --workers=2 --config.data.manual_dir=../shared/data/fsdd
# (results/av_digits_paper/tuning.md: validation AUC 80.5 +- 1.1, against 78.2 +- 3.5 for
# the paper's values and 76.6 +- 3.5 for mfeat's). The search turned AMCB and EFDA off: on
# av_digits' validation the policy does best over softmax uncertainty and the distance to
# the labelled set alone (80.0 +- 1.9 with both on and the centroid distance: within noise).
# ``tuned`` sets them.
TUNED_RLMBA = {"al.rlmba.beta": 0.25, "al.rlmba.kappa": 10,
               "al.rlmba.learning_rate": 0.003, "al.rlmba.prior_temperature": 0.3,
               "al.rlmba.reward_ema": 0.0, "modality.floor": 0.0,
               "modality.temperature": 2.0, "al.rlmba.diversity": "labelled",
               "al.rlmba.efda": False, "modality.amcb": False}

def get_config(arg=None):
  args = parse_arg(arg, allowed=("runlocal", "paper", "tuned"), exclusive=("paper", "tuned"),
                   where="configs/av_digits.py")
  config = default_config()
  config.data.name = "av_digits"
  config.data.modalities = "audio,image"
  config.data.test_size = 300
  config.data.val_size = 200
  config.model.width = 64
  # Three conv blocks, 60 epochs at 2e-3: the audio head reaches 89 % test top-1 at 300
  # random labels (two blocks, 30 epochs at 1e-3 left it at 26 %, under-trained).
  config.model.conv_channels = (16, 32, 64)
  config.train.num_epochs = 60
  config.train.learning_rate = 2e-3
  # 20 -> 140 labels: with this model random sampling is at 99 % by 300 labels, so the
  # strategies differ at the start of the curve.
  config.al.initial_size = 20
  config.al.budget_per_round = 20
  config.al.rounds = 6
  if args & {"paper", "tuned"}:
    paper_protocol(config)
    # 20 -> 100 labels: where the strategies of results/av_digits_compare differ (by 120-140
    # labels margin, BADGE and BMMAL are all at 97-98 %); it also halves a run's time.
    config.al.rounds = 4
    if "tuned" in args:
      # av_digits' own search on validation (TUNED_RLMBA above).
      config.update_from_flattened_dict(TUNED_RLMBA)
  if "runlocal" in args:
    config.al.rounds = 2
    config.train.num_epochs = 5
  return config
