r"""The paper's protocol on upmc_food101 (see rlmba_jax/paper_configs.py).

  python -m rlmba_jax.main --config=configs/food101.py --workdir=runs/food101 \
      --config.data.manual_dir=/data/upmc_food101 --config.al.strategy=bmmal \
      --config.model.pretrained=...      # optional: safetensors per modality
  python -m rlmba_jax.main --config=configs/food101.py:rlmba ...   # RL-MBA (evidential model)
  python -m rlmba_jax.main --config=configs/food101.py:runlocal --workdir=/tmp/food101  # CPU, ~1 min
"""

from rlmba_jax.paper_configs import paper_config


def get_config(arg=None):
  return paper_config("upmc_food101", arg)
