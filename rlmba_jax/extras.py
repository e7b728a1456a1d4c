"""Optional dependencies, each behind a pip extra: a feature that needs one that is missing
stops with a message naming the extra to install, not an ImportError.

  pip install 'rlmba_jax[audio]'    librosa + soundfile: recordings (av_digits, items,
                                    Kinetics-Sounds, VGGSound)
  pip install 'rlmba_jax[video]'    PyAV: extracting frames from videos (launch/extract_av.py)

The default experiment (mfeat) and the functional API need neither.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"librosa": "audio", "soundfile": "audio", "av": "video"}


class MissingExtraError(RuntimeError):
  """A feature needs a package of an extra that is not installed."""


def require(module: str, needed_for: str) -> ModuleType:
  """``import module``, or a ``MissingExtraError`` naming the extra that provides it."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    extra = EXTRAS.get(module, module)
    raise MissingExtraError(
        f"{needed_for} needs the Python package {module!r}, which is not installed: "
        f"pip install 'rlmba_jax[{extra}]' (or pip install -e '.[{extra}]' in a checkout)"
        ) from e
