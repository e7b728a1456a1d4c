r"""The paper's protocol on vggsound (see rlmba_jax/paper_configs.py).

  python -m rlmba_jax.main --config=configs/vggsound.py --workdir=runs/vggsound \
      --config.data.manual_dir=/data/vggsound --config.al.strategy=bmmal \
      --config.model.pretrained=...      # optional: safetensors per modality
  python -m rlmba_jax.main --config=configs/vggsound.py:rlmba ...   # RL-MBA (evidential model)
  python -m rlmba_jax.main --config=configs/vggsound.py:runlocal --workdir=/tmp/vggsound  # CPU, ~1 min
"""

from rlmba_jax.paper_configs import paper_config


def get_config(arg=None):
  return paper_config("vggsound", arg)
