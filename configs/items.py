r"""Active learning on your own photos, recordings and texts (``rlmba_jax/data/items.py``;
docs/own_data.md).

  python -m rlmba_jax.main --config=configs/items.py:person --workdir=runs/photos \
      --config.data.manual_dir=path/to/folder

The folder holds ``examples.csv`` (id,split,label) and ``images/{id}.jpg``,
``audio/{id}.wav``, ``text/{id}.txt`` (any subset). The paper's encoders: ResNet-18 for
photos, a CNN on the log-STFT for audio, BERT for text (``model.pretrained`` loads weights,
``model.bert.*`` sizes BERT to match them). ``person``: a person answers
(``al.oracle="person"``); ``runlocal``: small crops, a CNN and a one-layer BERT, 2 epochs,
for a CPU smoke run in seconds.
"""

from rlmba_jax.config_defaults import default_config, parse_arg
from rlmba_jax.paper_configs import runlocal


def get_config(arg=None):
  args = parse_arg(arg, allowed=("person", "runlocal"), where="configs/items.py")
  config = default_config()
  config.data.name = "items"
  config.data.modalities = ""  # every folder present: images/, audio/, text/
  config.data.standardize = False  # photos, tokens and spectrograms are normalised already
  config.model.encoders = "image=resnet18"
  config.model.dropout = 0.1
  config.train.batch_size = 32
  config.train.eval_batch_size = 128
  config.train.num_epochs = 30
  config.train.data_workers = 2
  config.al.initial_size = 20
  config.al.budget_per_round = 20
  config.al.rounds = 5
  if "person" in args:
    config.al.oracle = "person"
  if "runlocal" in args:
    runlocal(config)
    config.data.fixture = False
    config.model.encoders = ""  # a CNN per image-like modality, BERT for text
  return config
