"""Config files by name: ``--config=mfeat:runlocal`` is the packaged ``configs/mfeat.py``.

The repository's ``configs/`` folder ships inside the wheel as ``rlmba_jax.configs``, so an
installed ``rlmba-jax`` finds its configs from any folder. No heavy imports here: the
command line resolves names before absl parses the flags.
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib


def packaged_configs() -> dict[str, str]:
  """name -> path of each config shipped as ``rlmba_jax.configs``."""
  try:
    root = importlib.resources.files("rlmba_jax.configs")
  except ModuleNotFoundError:  # a checkout on sys.path without an install
    root = pathlib.Path(__file__).resolve().parent.parent / "configs"
  return {f.name[:-3]: str(f) for f in root.iterdir()
          if f.name.endswith(".py") and not f.name.startswith("_")}


def resolve_config_names(argv: list[str]) -> None:
  """Rewrites ``--config=NAME[:ARG]`` (or ``--config NAME[:ARG]``) in ``argv`` to the
  packaged file when NAME is not a path; a ValueError names the packaged configs when NAME
  is neither."""
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      value, inline = a[len("--config="):], True
    elif a == "--config" and i + 1 < len(argv):
      value, inline = argv[i + 1], False
    else:
      continue
    name, sep, arg = value.partition(":")
    if os.path.exists(name) or os.sep in name or name.endswith(".py"):
      continue
    configs = packaged_configs()
    if name not in configs:
      raise ValueError(f"--config={value}: {name!r} is neither a config file nor a packaged "
                       f"config ({', '.join(sorted(configs))})")
    resolved = configs[name] + sep + arg
    if inline:
      argv[i] = "--config=" + resolved
    else:
      argv[i + 1] = resolved
