r"""Active learning on your own arrays (``rlmba_jax/data/arrays.py``; docs/own_data.md).

  python -m rlmba_jax.main --config=configs/arrays.py --workdir=runs/mine \
      --config.data.manual_dir=path/to/folder          # the folder's labels answer
  python -m rlmba_jax.main --config=configs/arrays.py:person --workdir=runs/mine \
      --config.data.manual_dir=path/to/folder          # a person answers (exit code 3)

The folder holds ``examples.csv`` (id,split,label) and one ``<modality>.npy`` per modality;
every modality present is used (``data.modalities=""``). ``person`` sets
``al.oracle="person"`` and queries with margin sampling (the strongest simple strategy of
our comparisons, cheap on any pool; change it with ``--config.al.strategy``, also between
rounds: each round's strategy is recorded in the ledger); ``runlocal`` shrinks training
for a smoke test. 20 initial labels, then 5 rounds of 20; change them with
``--config.al.*``.
"""

from rlmba_jax.config_defaults import default_config, parse_arg


def get_config(arg=None):
  args = parse_arg(arg, allowed=("person", "runlocal"), where="configs/arrays.py")
  config = default_config()
  config.data.name = "arrays"
  config.data.modalities = ""  # every <modality>.npy of the folder
  config.model.width = 64
  config.al.initial_size = 20
  config.al.budget_per_round = 20
  config.al.rounds = 5
  if "person" in args:
    config.al.oracle = "person"
    config.al.strategy = "margin"
  if "runlocal" in args:
    config.al.rounds = 2
    config.train.num_epochs = 5
  return config
