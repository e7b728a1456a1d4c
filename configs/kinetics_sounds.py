r"""The paper's protocol on kinetics_sounds (see rlmba_jax/paper_configs.py).

  python -m rlmba_jax.main --config=configs/kinetics_sounds.py --workdir=runs/kinetics_sounds \
      --config.data.manual_dir=/data/kinetics_sounds --config.al.strategy=bmmal \
      --config.model.pretrained=...      # optional: safetensors per modality
  python -m rlmba_jax.main --config=configs/kinetics_sounds.py:rlmba ...   # RL-MBA (evidential model)
  python -m rlmba_jax.main --config=configs/kinetics_sounds.py:runlocal --workdir=/tmp/kinetics_sounds  # CPU, ~1 min
"""

from rlmba_jax.paper_configs import paper_config


def get_config(arg=None):
  return paper_config("kinetics_sounds", arg)
